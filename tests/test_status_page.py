"""The status page (issue 17): ``serve_status``, its routes and their content.

Every test serves a supervisor of its own on the loopback with port 0.
Requests go through :mod:`http.client` (no proxy, whatever the
environment says) or a raw socket where the request must be malformed on
purpose. The history's arithmetic and bounds are tested on synthetic
readings; the page as a browser renders it is in
``test_status_browser.py``, hostile clients in ``test_hostile_http.py``.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from neoleasepool import (
    BackgroundIntervalWorker,
    LeasePoolNotStartedError,
    SupervisedLeaseManager,
    SupervisedWorkGrinder,
    TaskSupervisor,
)
from neoleasepool._util.tally import TIME_BUCKETS, HistogramSnapshot
from neoleasepool.loops.aloop import ALoop
from neoleasepool.observe import server as server_module
from neoleasepool.observe.history import KEPT, History
from neoleasepool.observe.prometheus import CONTENT_TYPE
from neoleasepool.observe.reading import GrinderReading, Reading
from neoleasepool.observe.server import StatusServer
from neoleasepool.observe.status import FAILURES_SHOWN, build_status

from .support import wait_until

TOKEN = "correct-horse-battery-staple-42"
SECRET_ARGUMENT = "s3cret-argument-never-shown"

# ------------------------------------------------------------- helpers


def port_of(url: str) -> int:
    port = urllib.parse.urlsplit(url).port
    assert port is not None, url
    return port


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def get(
    url: str,
    path: str = "/",
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> Answer:
    """One request to the server behind ``url`` (``Host`` overridable)."""
    connection = http.client.HTTPConnection("127.0.0.1", port_of(url), timeout=timeout)
    try:
        headers = dict(headers or {})
        host = headers.pop("Host", None)
        connection.putrequest(method, path, skip_host=host is not None)
        if host is not None:
            connection.putheader("Host", host)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        body = response.read()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
    finally:
        connection.close()


def raw(url: str, data: bytes, *, timeout: float = 10.0) -> bytes:
    """Send ``data`` as is, then EOF; everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", port_of(url)), timeout=timeout) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)  # nothing more: the server sees the end
        return read_all(sock)


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def status_of(answer: bytes) -> int:
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", answer)
    assert match, answer[:200]
    return int(match.group(1))


def sometimes_fails(x: int) -> int:
    if x % 5 == 0:
        raise ValueError(f"item {x} is a multiple of five")
    return x * 2


def refuse_secret(secret: str) -> None:
    raise RuntimeError("refused the input")


class Ticker:
    """A background worker's target: every third run fails."""

    def __init__(self) -> None:
        self.runs = 0

    def __call__(self, **_: Any) -> None:
        self.runs += 1
        if self.runs % 3 == 0:
            raise KeyError(f"tick {self.runs}")


@dataclass
class Served:
    supervisor: TaskSupervisor
    manager: SupervisedLeaseManager
    grinder: SupervisedWorkGrinder
    worker: BackgroundIntervalWorker
    url: str


@pytest.fixture
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    """A supervisor with a thread manager, a grinder and a worker, serving."""
    yield from serve_a_supervisor(request.node.name)


def serve_a_supervisor(name: str, **serve: Any) -> Iterator[Served]:
    supervisor = TaskSupervisor(id=re.sub(r"\W", "_", name)[:40])
    supervisor.set_thread_pool(max_size=6)
    supervisor.start()
    try:
        manager = supervisor.create_lease_manager(
            "io", backend="thread", max_pools=2, workers_per_pool=2
        )
        grinder = supervisor.create_work_grinder(
            "g", manager, batch_size_threshold=8, max_wait_seconds=0.01
        )
        worker = BackgroundIntervalWorker(
            "tick", Ticker(), interval=0.1, supervisor=supervisor, on_error=lambda: None
        )
        worker.start()
        url = supervisor.serve_status(**serve)
        yield Served(supervisor, manager, grinder, worker, url)
    finally:
        supervisor.stop(wait=15)


def run_items(grinder: SupervisedWorkGrinder, count: int) -> None:
    futures = [grinder.enqueue(sometimes_fails, i) for i in range(count)]
    concurrent_wait(futures)


def concurrent_wait(futures: list[Any]) -> None:
    for future in futures:
        try:
            future.result(timeout=30)
        except ValueError:
            pass


# --------------------------------------------------------------- routes


def test_serve_status_twice_returns_the_same_url(served: Served) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", served.url)
    assert served.supervisor.serve_status() == served.url
    assert get(served.url, "/healthz").status == 200


def test_serving_again_elsewhere_is_refused_with_the_url_it_serves(served: Served) -> None:
    port = port_of(served.url)
    assert served.supervisor.serve_status(port=port) == served.url
    with pytest.raises(ValueError, match="already serves at"):
        served.supervisor.serve_status(port=port + 1 if port < 65535 else port - 1)
    with pytest.raises(ValueError, match="already serves at"):
        served.supervisor.serve_status(token="t" * 20)


def test_a_stop_that_races_serve_status_leaves_no_server_behind() -> None:
    # The stop comes in while the server is being started (the observer
    # then closes it itself), or just after (the stop closes it).
    for round_ in range(5):
        supervisor = TaskSupervisor(id=f"race{round_}")
        supervisor.start()
        stopper = threading.Thread(target=supervisor.stop)
        try:
            stopper.start()
            url = supervisor.serve_status()
        except LeasePoolNotStartedError:
            url = None
        finally:
            stopper.join(30)
        assert not supervisor.active
        if url is not None:  # it started before the stop: the stop closed it
            with pytest.raises(OSError):
                socket.create_connection(("127.0.0.1", port_of(url)), timeout=5).close()
        # A new run serves again, on a new server.
        supervisor.start()
        try:
            again = supervisor.serve_status()
            assert get(again, "/healthz").status == 200
        finally:
            supervisor.stop()


def test_page_is_one_self_contained_document_allowed_only_its_own_script(
    served: Served,
) -> None:
    answer = get(served.url, "/")
    assert answer.status == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert answer.headers["connection"] == "close"
    page = answer.body.decode()
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    # Nothing is loaded from elsewhere: no src/href to a URL, no @import, no url().
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "@import" not in page and "url(" not in page
    assert "fetch(SOURCE" in page and "status.json" in page
    (script,) = re.findall(r"<script>(.*?)</script>", page, re.S)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    policy = answer.headers["content-security-policy"]
    assert f"script-src 'sha256-{digest}'" in policy
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy


def test_status_json_shows_what_the_parts_stats_say(served: Served) -> None:
    run_items(served.grinder, 60)
    with pytest.raises(RuntimeError):
        served.grinder.submit(refuse_secret, SECRET_ARGUMENT)
    expected = served.grinder.stats()
    with served.manager.lease(owner="report-job", lease_seconds=30) as lease:

        def caught_up() -> bool:
            shown = get(served.url, "/status.json").json()
            return shown["grinders"][0]["completed"] == expected["items_completed"] and any(
                x["owner"] == "report-job" for x in shown["managers"][0]["leases"]
            )

        wait_until(caught_up, timeout=15)
        answer = get(served.url, "/status.json")
        manager_stats = served.manager.stats()
        assert lease.active
    assert answer.status == 200 and answer.headers["content-type"] == "application/json"
    assert SECRET_ARGUMENT.encode() not in answer.body
    status = answer.json()
    assert status["schema"] == 1
    assert status["supervisor"]["id"] == served.supervisor.id
    assert status["supervisor"]["active"] is True

    (manager,) = status["managers"]
    assert manager["name"] == "io" and manager["backend"] == "thread"
    for key in ("desired", "total", "leased", "max_pools", "leases_granted"):
        assert manager[key] == manager_stats[key], key
    (held,) = [x for x in manager["leases"] if x["owner"] == "report-job"]
    assert held["state"] == "live"
    assert 0 < held["seconds_to_soft_expiry"] <= 30
    assert held["seconds_to_hard_expiry"] >= held["seconds_to_soft_expiry"]

    (grinder,) = status["grinders"]
    assert grinder["name"] == "g" and grinder["manager"] == "io"
    for key, stat in (("submitted", "items_submitted"), ("completed", "items_completed"),
                      ("failed", "items_failed"), ("cancelled", "items_cancelled")):
        assert grinder[key] == expected[stat], key
    assert grinder["completed"] == 48 and grinder["failed"] == 13
    assert grinder["latency_measured"] is True

    names = {aloop["name"]: aloop for aloop in status["aloops"]}
    assert names["__supervisor__"]["own"] is True
    assert names[manager_stats["aloop"]]["own"] is False
    assert names["__supervisor__"]["active"] is True

    (worker,) = status["workers"]
    worker_stats = served.worker.stats()
    assert worker["name"] == "tick" and worker["state"] == "running"
    assert 0 < worker["runs"] <= worker_stats["runs"]
    assert 0 <= worker["errors"] <= worker_stats["errors"]
    assert worker["last_run_age_seconds"] is not None and worker["last_run_age_seconds"] < 10

    failures = status["failures"]
    assert len(failures) <= FAILURES_SHOWN
    kinds = {(f["kind"], f["source"], f["error"]) for f in failures}
    assert ("grinder", "g", "RuntimeError") in kinds
    assert ("worker", "tick", "KeyError") in kinds
    assert [f["time"] for f in failures] == sorted(f["time"] for f in failures)


def test_status_json_plots_throughput_and_latency_over_the_last_minute(
    served: Served,
) -> None:
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            run_items(served.grinder, 20)

    feeder = threading.Thread(target=load, name="status-test-feeder")
    feeder.start()
    try:

        def plotted() -> bool:
            grinder = get(served.url, "/status.json").json()["grinders"][0]
            return len(grinder["series"]["items_per_second"]) >= 2 and any(
                v for v in grinder["series"]["items_per_second"]
            )

        wait_until(plotted, timeout=20)
        status = get(served.url, "/status.json").json()
    finally:
        stop.set()
        feeder.join()
    grinder = status["grinders"][0]
    series = grinder["series"]
    n = len(series["time"])
    assert all(len(values) == n for values in series.values())
    assert series["time"] == sorted(series["time"])
    assert grinder["minute"]["items_per_second"] > 0
    p50, p95 = grinder["minute"]["p50_seconds"], grinder["minute"]["p95_seconds"]
    assert p50 is not None and p95 is not None and 0 < p50 <= p95
    lag = next(a for a in status["aloops"] if a["own"])["series"]
    assert len(lag["time"]) == len(lag["lag_seconds"]) >= 2


def test_a_grinder_without_metrics_shows_latency_as_not_available(served: Served) -> None:
    quiet = served.supervisor.create_work_grinder(
        "quiet", served.manager, metrics=False, max_wait_seconds=0.01
    )
    assert quiet.submit(pow, 2, 3) == 8

    def listed() -> bool:
        status = get(served.url, "/status.json").json()
        return any(g["name"] == "quiet" and g["completed"] == 1 for g in status["grinders"])

    wait_until(listed, timeout=15)
    (shown,) = [g for g in get(served.url, "/status.json").json()["grinders"]
                if g["name"] == "quiet"]
    assert shown["latency_measured"] is False
    assert shown["minute"]["p50_seconds"] is None and shown["minute"]["p95_seconds"] is None
    assert all(v is None for v in shown["series"]["p50_seconds"])


def test_metrics_route_serves_prometheus_text(served: Served) -> None:
    run_items(served.grinder, 10)
    answer = get(served.url, "/metrics")
    assert answer.status == 200
    assert answer.headers["content-type"] == CONTENT_TYPE
    text = answer.body.decode()
    assert "# TYPE neoleasepool_grinder_items_total counter" in text
    assert re.search(r'neoleasepool_grinder_items_total\{grinder="g",manager="io",'
                     r'outcome="ok"\} \d+', text), text
    assert 'neoleasepool_aloop_active{aloop="' in text


def test_healthz_head_unknown_paths_and_methods(served: Served) -> None:
    ok = get(served.url, "/healthz")
    assert (ok.status, ok.body) == (200, b"ok\n")
    head = get(served.url, "/status.json", method="HEAD")
    assert head.status == 200 and head.body == b""
    assert int(head.headers["content-length"]) > 0
    assert get(served.url, "/nope").status == 404
    assert get(served.url, "/status.json/..").status == 404
    post = get(served.url, "/", method="POST")
    assert post.status == 405 and post.headers["allow"] == "GET, HEAD"
    assert get(served.url, "/", method="DELETE").status == 405


def test_healthz_is_503_once_the_supervisor_is_not_active() -> None:
    class Inactive:
        id = "inactive"
        active = False

    class Observer:
        supervisor = Inactive()

        def reading(self) -> Reading:
            return Reading(time.time(), "test", {"id": "inactive", "pool": {}}, None)

    loop = ALoop("status-test")
    loop.start()
    observer: Any = Observer()
    server = StatusServer(observer, loop, host="127.0.0.1", port=0, token=None)
    try:
        server.start()
        answer = get(server.url, "/healthz")
        assert (answer.status, answer.body) == (503, b"stopping\n")
        assert get(server.url, "/status.json").json()["supervisor"]["active"] is False
    finally:
        server.close()
        loop.stop()
    assert server.closed
    server.close()  # idempotent


# ---------------------------------------------------------- token rules


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "example.com"])
def test_binding_off_the_loopback_needs_a_token(host: str) -> None:
    supervisor = TaskSupervisor(id="needs-token")
    supervisor.start()
    try:
        with pytest.raises(ValueError, match="needs a token"):
            supervisor.serve_status(host=host)
    finally:
        supervisor.stop()


@pytest.mark.parametrize(
    "token", ["short", "x" * 15, "with a space in it ok", "tab\there-and-more"]
)
def test_a_token_must_be_long_printable_ascii(token: str) -> None:
    supervisor = TaskSupervisor(id="bad-token")
    supervisor.start()
    try:
        with pytest.raises(ValueError, match="at least 16"):
            supervisor.serve_status(token=token)
    finally:
        supervisor.stop()


@pytest.fixture
def with_token(request: pytest.FixtureRequest) -> Iterator[Served]:
    yield from serve_a_supervisor(request.node.name, token=TOKEN)


def test_with_a_token_every_route_wants_it(with_token: Served) -> None:
    url = with_token.url
    assert TOKEN not in url
    for path in ("/", "/status.json", "/metrics", "/healthz"):
        refused = get(url, path)
        assert refused.status == 401 and refused.headers["www-authenticate"] == "Bearer"
        assert get(url, path, headers={"Authorization": "Bearer wrong-token-wrong-token"}
                   ).status == 401
        assert get(url, path + "?token=" + TOKEN[:-1]).status == 401
        assert get(url, path, headers={"Authorization": "Basic " + TOKEN}).status == 401
        assert get(url, path, headers={"Authorization": f"Bearer {TOKEN}"}).status == 200
        assert get(url, path + "?token=" + urllib.parse.quote(TOKEN)).status == 200


def test_off_the_loopback_the_token_is_what_guards(request: pytest.FixtureRequest) -> None:
    for served in serve_a_supervisor(request.node.name, host="0.0.0.0", token=TOKEN):
        assert re.fullmatch(r"http://0\.0\.0\.0:\d+/", served.url)
        other_host = {"Host": f"status.example:{port_of(served.url)}"}
        assert get(served.url, "/healthz", headers=other_host).status == 401
        assert get(served.url, "/healthz?token=" + TOKEN, headers=other_host).status == 200


# ------------------------------------------------------------ host guard


def test_on_the_loopback_a_foreign_host_header_is_refused(served: Served) -> None:
    port = port_of(served.url)
    for host in (f"evil.example:{port}", "evil.example", f"127.0.0.2:{port}",
                 f"127.0.0.1:{port + 1}", f"localhost.evil.example:{port}"):
        assert get(served.url, "/status.json", headers={"Host": host}).status == 421, host
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST", "127.0.0.1"):
        assert get(served.url, "/healthz", headers={"Host": host}).status == 200, host
    no_host = raw(served.url, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert status_of(no_host) == 400


# ---------------------------------------------- stopping with the supervisor


def test_the_server_stops_with_the_supervisor_and_closes_its_port() -> None:
    supervisor = TaskSupervisor(id="stops")
    supervisor.start()
    try:
        url = supervisor.serve_status()
        assert get(url, "/healthz").status == 200
        # A connection that never sends its request is ended by the stop too.
        idle = socket.create_connection(("127.0.0.1", port_of(url)), timeout=10)
    finally:
        supervisor.stop()
    with idle:
        answer = read_all(idle)  # closed, or told on its way out
        assert answer == b"" or status_of(answer) == 503, answer
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port_of(url)), timeout=5).close()
    assert not [t for t in threading.enumerate() if "_status" in t.name]
    with pytest.raises(LeasePoolNotStartedError):
        supervisor.serve_status()
    supervisor.start()  # a restarted supervisor serves again
    try:
        again = supervisor.serve_status()
        assert get(again, "/healthz").status == 200
    finally:
        supervisor.stop()


def test_a_port_in_use_raises_oserror_and_leaves_nothing_running() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        supervisor = TaskSupervisor(id="port-taken")
        supervisor.start()
        try:
            with pytest.raises(OSError):
                supervisor.serve_status(port=taken.getsockname()[1])
            url = supervisor.serve_status()  # another port still works
            assert get(url, "/healthz").status == 200
        finally:
            supervisor.stop()


# ------------------------------------------------------------- history


def _histogram(*observations: float) -> HistogramSnapshot:
    counts = [0] * (len(TIME_BUCKETS) + 1)
    for value in observations:
        counts[next((i for i, b in enumerate(TIME_BUCKETS) if value <= b), -1)] += 1
    return HistogramSnapshot(TIME_BUCKETS, tuple(counts), sum(observations))


def _reading(t: float, ended: int, latency: HistogramSnapshot | None,
             grinder: str = "g", aloops: tuple[str, ...] = ("a",)) -> Reading:
    stats = {"name": grinder, "manager": "m", "items_completed": ended, "items_failed": 0,
             "pending": ended % 7}
    timings = {} if latency is None else {"latency": latency}
    return Reading(
        time=t, version="test", supervisor={"id": "s", "active": True, "pool": {}},
        own_loop={"name": "__supervisor__", "lag_seconds": 0.001},
        grinders=[GrinderReading(stats, timings, [])],
        aloops=[{"name": name, "lag_seconds": 0.002} for name in aloops],
    )


def test_history_rings_stay_bounded_after_many_samples() -> None:
    history = History()
    for i in range(5 * KEPT):
        history.add(_reading(1000.0 + i, 10 * i, _histogram(*[0.01] * i)))
    assert history.samples_taken == 5 * KEPT
    assert history.sizes() == {"grinder:g": KEPT, "aloop:__supervisor__": KEPT, "aloop:a": KEPT}
    status = build_status(_reading(1000.0 + 5 * KEPT, 10 * 5 * KEPT, None), history)
    assert len(status["grinders"][0]["series"]["time"]) == KEPT - 1
    # The same reading again (a shared one) is not a new sample.
    history.add(_reading(1000.0 + 5 * KEPT - 1, 0, None))
    assert history.samples_taken == 5 * KEPT and len(history.aloop_lags("a")) == KEPT
    # Parts that leave the readings leave the history.
    history.add(_reading(5000.0, 0, None, grinder="other", aloops=()))
    assert history.sizes() == {"grinder:other": 1, "aloop:__supervisor__": KEPT}


def test_history_derives_rates_and_quantiles_per_interval_and_per_minute() -> None:
    history = History()
    history.add(_reading(100.0, 0, _histogram()))
    history.add(_reading(102.0, 50, _histogram(*[0.004] * 50)))
    history.add(_reading(103.0, 150, _histogram(*[0.004] * 50, *[0.2] * 100)))
    grinder = history.grinder("g")
    assert grinder is not None
    first, second = grinder.intervals()
    assert first.items_per_second == 25.0 and second.items_per_second == 100.0
    assert first.p50 is not None and 0.0025 < first.p50 <= 0.005
    assert second.p50 is not None and 0.1 < second.p50 <= 0.25
    minute = grinder.window()
    assert minute is not None and minute.items_per_second == 50.0
    assert minute.p95 is not None and 0.1 < minute.p95 <= 0.25
    # A grinder replaced by one of the same name (counts went down) starts afresh.
    history.add(_reading(104.0, 3, _histogram(0.001)))
    assert len(grinder) == 1 and grinder.window() is None


def test_the_sampler_takes_about_one_reading_a_second(served: Served) -> None:
    def samples() -> int:
        status = get(served.url, "/status.json").json()
        return len(next(a for a in status["aloops"] if a["own"])["series"]["time"])

    # Asked for /status.json as fast as it answers, the history still grows
    # on its timer, at a fixed rate of one a second: of three more samples,
    # the last is due 2 s after the first. (Measured from when a count is
    # seen, not from the test's start, which a loaded machine may delay
    # after the first sample: a 1 s margin.)
    wait_until(lambda: samples() >= 1, timeout=20)
    seen, at = samples(), time.monotonic()
    wait_until(lambda: samples() >= seen + 3, timeout=20)
    elapsed = time.monotonic() - at
    assert elapsed >= 1.0
    assert samples() <= seen + elapsed + 2


def test_server_constants_bound_what_a_client_can_hold() -> None:
    assert server_module.MAX_HEAD_BYTES == 8192
    assert server_module.MAX_CONNECTIONS == 64
    assert server_module.HEAD_TIMEOUT_SECONDS == 5.0
