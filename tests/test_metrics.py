"""Metrics: the lock-free tally, the catalog, and Prometheus text checked by
prometheus_client's own parser against the parts' ``stats()``."""

from __future__ import annotations

import _thread
import asyncio
import contextlib
import contextvars
import functools
import json
import math
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from neoleasepool import (
    BackgroundIntervalWorker,
    LeasedExecutorManager,
    TaskSupervisor,
    WorkGrinder,
    WrongLoopError,
    time_limited,
)
from neoleasepool._util.tally import HistogramSnapshot, Tally
from neoleasepool.observe.families import CATALOG, PREFIX
from neoleasepool.observe.families import families as families_of
from neoleasepool.observe.model import Family
from neoleasepool.observe.prometheus import render
from neoleasepool.observe.reading import HOP_TIMEOUT_SECONDS, read
from neoleasepool.observe.standalone import metrics_text_of

from .support import run, started_supervisor, wait_until

DOC = Path(__file__).resolve().parents[1] / "doc" / "observability.md"


@pytest.fixture
def sup(request: pytest.FixtureRequest) -> Iterator[TaskSupervisor]:
    with started_supervisor(f"mx-{request.node.name}", max_threads=6, stop_wait=15) as s:
        yield s


def parse(text: str) -> dict[str, Any]:
    """Families by name, as Prometheus' reference parser reads them."""
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(families: dict[str, Any], sample: str, **labels: str) -> float:
    family = families[sample.removesuffix("_total")] if sample.endswith("_total") else None
    family = family or families[re.sub(r"_(bucket|sum|count)$", "", sample)]
    found = [s.value for s in family.samples if s.name == sample and s.labels == labels]
    assert len(found) == 1, (sample, labels, family.samples)
    return float(found[0])


# ------------------------------------------------------------------ the tally


def test_a_tally_fed_by_many_threads_loses_no_count() -> None:
    tally = Tally(("n",), ("t",))
    start = threading.Barrier(8)

    def feed() -> None:
        start.wait()
        for _ in range(5_000):
            tally.add(0)
            tally.observe(0, 0.003)

    threads = [threading.Thread(target=feed) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts, histograms = tally.snapshot()
    assert counts == {"n": 40_000}
    assert histograms["t"].count == 40_000
    assert histograms["t"].sum == pytest.approx(120.0)


def test_shards_of_threads_that_ended_are_folded_in_without_loss() -> None:
    tally = Tally(("n",))
    for _ in range(20):
        t = threading.Thread(target=tally.add, args=(0, 3))
        t.start()
        t.join()
    assert tally.counts() == {"n": 60}
    # Folded, not kept (no growth with thread churn), once each thread's
    # state is torn down.
    wait_until(lambda: tally.counts() == {"n": 60} and "shards=0" in repr(tally))
    tally.add(0)
    assert tally.counts() == {"n": 61}


def test_histogram_buckets_are_inclusive_upper_bounds_and_quantiles_interpolate() -> None:
    tally = Tally((), ("t",), bounds=(1.0, 2.0, 4.0))
    for v in (1.0, 1.5, 2.0, 3.0, 100.0):
        tally.observe(0, v)
    snap = tally.snapshot()[1]["t"]
    assert snap.counts == (1, 2, 1, 1)
    assert snap.cumulative() == [(1.0, 1), (2.0, 3), (4.0, 4), (math.inf, 5)]
    assert snap.quantile(0.5) == pytest.approx(1.75)  # rank 2.5 of 3 in (1, 2]
    assert snap.quantile(0.99) == 4.0  # in +Inf: the highest bound, as Prometheus
    assert HistogramSnapshot((1.0,), (0, 0), 0.0).quantile(0.5) is None


@pytest.mark.parametrize("bounds", [(), (2.0, 1.0), (1.0, 1.0), (1.0, math.inf)])
def test_histogram_bounds_must_be_finite_and_ascending(bounds: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="strictly ascending"):
        Tally((), ("t",), bounds=bounds)


# ------------------------------------------------------------------ the text


def test_exposition_escapes_labels_and_help_and_keeps_inf_equal_to_count() -> None:
    counter = Family("neoleasepool_x_total", "counter", 'help with \\ and\nnewline')
    counter.add(3, grinder='we"ird\\name\nhere')
    hist = Family("neoleasepool_h_seconds", "histogram", "h")
    hist.add(HistogramSnapshot((0.5, 1.0), (2, 0, 1), 3.25), grinder="g")
    text = render([counter, hist, Family("neoleasepool_empty", "gauge", "no samples")])
    assert "neoleasepool_empty" not in text
    families = parse(text)
    assert families["neoleasepool_x"].documentation == "help with \\ and\nnewline"
    assert value(families, "neoleasepool_x_total", grinder='we"ird\\name\nhere') == 3
    buckets = [
        (s.labels["le"], s.value) for s in families["neoleasepool_h_seconds"].samples
        if s.name.endswith("_bucket")
    ]
    assert buckets == [("0.5", 2), ("1.0", 2), ("+Inf", 3)]
    assert value(families, "neoleasepool_h_seconds_count", grinder="g") == 3
    assert value(families, "neoleasepool_h_seconds_sum", grinder="g") == 3.25


@pytest.mark.parametrize(
    ("name", "kind"),
    [("bad name", "gauge"), ("neoleasepool_x", "counter"), ("neoleasepool_x_total", "gauge")],
)
def test_a_family_refuses_names_against_the_conventions(name: str, kind: Any) -> None:
    with pytest.raises(ValueError):
        Family(name, kind, "h")


def test_the_catalog_follows_prometheus_naming_and_is_documented() -> None:
    documented = DOC.read_text()
    for name, (kind, labels, _) in CATALOG.items():
        assert (kind == "counter") == name.endswith("_total"), name
        assert not re.search(r"_(ms|milliseconds|bytes_total)$", name), name
        assert f"`{PREFIX}{name}`" in documented, f"{name} is missing from doc/observability.md"
        assert "item" not in labels.split(", ") and "lease" not in labels, name


# ----------------------------------------------- a supervisor, scraped


def _fail(secret: str) -> None:
    raise ValueError("the work failed")


def _hang() -> None:
    time.sleep(5)


def test_metrics_text_matches_each_parts_stats(sup: TaskSupervisor) -> None:
    manager = sup.create_lease_manager("cpu", max_pools=2)
    grinder = sup.create_work_grinder("g", manager, max_wait_seconds=0.01)
    ran = threading.Event()

    def tick(**kwargs: Any) -> None:
        ran.set()
        raise KeyError("tick")

    worker = BackgroundIntervalWorker("w", tick, interval=0.05, supervisor=sup,
                                      on_error=lambda **kwargs: None)
    worker.start()
    assert [grinder.submit(pow, 2, i) for i in range(40)][:3] == [1, 2, 4]
    for _ in range(3):
        with pytest.raises(ValueError):
            grinder.submit(_fail, "hunter2")
    with pytest.raises(TimeoutError):
        grinder.submit(time_limited(_hang, 0.05))
    assert ran.wait(10)
    wait_until(lambda: worker.errors >= 2)

    families = parse(sup.metrics_text())
    g = grinder.stats()
    labels = {"grinder": "g", "manager": "cpu"}
    assert value(families, "neoleasepool_grinder_items_submitted_total", **labels) == 44
    assert value(families, "neoleasepool_grinder_items_total", outcome="ok", **labels) == 40
    assert value(families, "neoleasepool_grinder_items_total", outcome="error", **labels) == 3
    assert value(families, "neoleasepool_grinder_items_total", outcome="timeout", **labels) == 1
    assert g["items_completed"] == 40 and g["items_timed_out"] == 1
    latency = value(families, "neoleasepool_grinder_item_latency_seconds_count", **labels)
    assert latency == 44  # every item that ran is timed
    inf = value(families, "neoleasepool_grinder_item_latency_seconds_bucket", le="+Inf", **labels)
    assert inf == latency

    m = manager.stats()
    mlabels = {"manager": "cpu", "backend": "thread"}
    assert value(families, "neoleasepool_manager_leases_granted_total", **mlabels) == m[
        "leases_granted"
    ]
    assert value(families, "neoleasepool_manager_pools_max", **mlabels) == 2
    assert value(families, "neoleasepool_manager_pools", state="leased", **mlabels) >= 0

    runs = value(families, "neoleasepool_worker_runs_total", worker="w")
    assert runs >= 2
    assert value(families, "neoleasepool_worker_errors_total", worker="w") >= 2
    last = value(families, "neoleasepool_worker_last_run_timestamp_seconds", worker="w")
    assert time.time() - 60 < last <= time.time()
    aloop = manager.aloop.name
    assert value(families, "neoleasepool_aloop_active", aloop=aloop) == 1

    # The failures keep the function's name and the error, never its arguments.
    failures = grinder.recent_failures()
    assert {f["where"] for f in failures} >= {"_fail"}
    assert "hunter2" not in json.dumps(failures)
    assert {f["error"] for f in worker.failures.recent()} == {"KeyError"}


def test_a_grinder_without_metrics_keeps_counts_but_no_timings(sup: TaskSupervisor) -> None:
    manager = sup.create_lease_manager("cpu", max_pools=1)
    grinder = sup.create_work_grinder("plain", manager, max_wait_seconds=0.01, metrics=False)
    assert [grinder.submit(abs, -i) for i in range(5)] == [0, 1, 2, 3, 4]
    assert grinder.item_timings() == {}
    families = parse(sup.metrics_text())
    labels = {"grinder": "plain", "manager": "cpu"}
    assert value(families, "neoleasepool_grinder_items_total", outcome="ok", **labels) == 5
    assert "neoleasepool_grinder_item_latency_seconds" not in families


def test_metrics_option_is_checked() -> None:
    from neoleasepool.grinder.options import grinder_options

    with pytest.raises(ValueError, match="metrics must be True or False"):
        grinder_options(
            max_wait_seconds=1, batch_size_threshold=1, lease_seconds=1,
            owner_prefix="p", logger=None, chunk_size=None, metrics="yes",
        )


def test_metrics_text_refuses_an_event_loop_thread(sup: TaskSupervisor) -> None:
    aloop = sup.create_aloop("probe")

    async def scrape() -> str:
        return sup.metrics_text()

    with pytest.raises(WrongLoopError, match=r"asyncio\.to_thread"):
        aloop.call(scrape)


def test_metrics_text_of_a_stopped_supervisor_says_so() -> None:
    sup = TaskSupervisor(id="mx-idle")
    families = parse(sup.metrics_text())
    assert value(families, "neoleasepool_supervisor_active", supervisor="mx-idle") == 0


@contextlib.contextmanager
def blocked(aloop: Any) -> Iterator[threading.Event]:
    """Block ``aloop``'s thread (a callback that waits) until the block
    ends; yields the event that says the loop is blocked."""
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        inside.set()
        release.wait(30)

    aloop.call_soon(hold)
    assert inside.wait(10)
    try:
        yield inside
    finally:
        release.set()


def test_an_aloop_blocked_right_now_shows_its_lag(sup: TaskSupervisor) -> None:
    aloop = sup.create_aloop("laggy")
    with blocked(aloop):
        # The probe due 0.5 s after the last one cannot fire: its lag grows.
        wait_until(lambda: (aloop.stats()["lag_seconds"] or 0) >= 0.3, timeout=20)
        families = parse(sup.metrics_text())
        assert value(families, "neoleasepool_aloop_lag_seconds", aloop="laggy") >= 0.3
    aloop.call_sync(lambda: None)  # the late probe fired after the block
    assert aloop.stats()["lag_max_seconds"] >= 0.3


def test_a_grinder_whose_loop_does_not_answer_stays_in_the_scrape(
    sup: TaskSupervisor,
) -> None:
    manager = sup.create_lease_manager("cpu", max_pools=1)
    grinder = sup.create_work_grinder("g", manager, max_wait_seconds=0.01)
    assert [grinder.submit(abs, -i) for i in range(7)][-1] == 6
    with blocked(manager.aloop):
        started = time.monotonic()
        reading = read(sup)
        assert time.monotonic() - started < HOP_TIMEOUT_SECONDS + 5
    (stale,) = reading.grinders
    assert stale.stats["state"] == "unresponsive"
    assert stale.stats["items_completed"] == 7
    families = {f.name: f for f in families_of(reading)}
    samples = dict(families["neoleasepool_grinder_items_total"].samples)
    assert samples[(("grinder", "g"), ("manager", "cpu"), ("outcome", "ok"))] == 7
    assert families["neoleasepool_grinder_queue_depth"].samples == []  # no gauge: not known
    assert grinder.stats()["state"] == "running"  # answers again once unblocked


def test_an_error_that_cannot_be_printed_still_ends_its_item(sup: TaskSupervisor) -> None:
    manager = sup.create_lease_manager("cpu", max_pools=1)
    grinder = sup.create_work_grinder("g", manager, max_wait_seconds=0.01)
    futures = [grinder.enqueue(_unprintable) for _ in range(3)]
    futures.append(grinder.enqueue(abs, -5))
    for future in futures[:3]:
        with pytest.raises(Unprintable):
            future.result(30)
    assert futures[3].result(30) == 5
    assert grinder.stats()["state"] == "running"
    assert grinder.submit(abs, -1) == 1
    assert {f["message"] for f in grinder.recent_failures()} == {
        "<the error's message could not be read>"
    }


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


def _unprintable() -> None:
    raise Unprintable()


def test_counts_of_short_lived_threads_are_exact_while_read(sup: TaskSupervisor) -> None:
    tally = Tally(("n",))
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            tally.counts()

    readers = [threading.Thread(target=reader) for _ in range(2)]
    for t in readers:
        t.start()
    try:
        for _ in range(100):
            writers = [threading.Thread(target=tally.add, args=(0, 3)) for _ in range(4)]
            for t in writers:
                t.start()
            for t in writers:
                t.join()
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert tally.counts() == {"n": 1200}


def test_shards_of_threads_not_made_by_threading_are_folded_too() -> None:
    tally = Tally(("n",))
    done = threading.Semaphore(0)

    def write() -> None:
        tally.add(0, 2)
        done.release()

    for _ in range(30):
        _thread.start_new_thread(write, ())
    for _ in range(30):
        assert done.acquire(timeout=10)

    wait_until(lambda: tally.counts() == {"n": 60} and "shards=0" in repr(tally))


def test_failure_rings_are_bounded(sup: TaskSupervisor) -> None:
    manager = sup.create_lease_manager("cpu", max_pools=1)
    grinder = sup.create_work_grinder("g", manager, max_wait_seconds=0.01)
    for _ in range(30):
        with pytest.raises(ValueError):
            grinder.submit(_fail, "x" * 10_000)
    failures = grinder.recent_failures()
    assert len(failures) == 20
    assert all(len(f["message"]) <= 160 for f in failures)


# ------------------------------------------------------------ context


VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


def _read_var() -> str:
    return VAR.get()


def test_offloaded_work_sees_its_callers_context_on_threads(sup: TaskSupervisor) -> None:
    manager = sup.create_lease_manager("cpu", max_pools=2)
    grinder = sup.create_work_grinder("g", manager, max_wait_seconds=0.01)
    results: dict[str, str] = {}

    def caller(tag: str) -> None:
        VAR.set(tag)
        results[tag] = grinder.submit(_read_var)
        with manager.lease() as lease:
            results[tag + "-lease"] = lease.run(_read_var)

    threads = [threading.Thread(target=caller, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == {**{f"t{i}": f"t{i}" for i in range(4)},
                       **{f"t{i}-lease": f"t{i}" for i in range(4)}}


# ------------------------------------------------ without a supervisor


def test_parts_run_without_a_supervisor_have_the_same_metrics() -> None:
    async def main() -> tuple[str, str]:
        manager = LeasedExecutorManager(max_pools=2)
        await manager.start()
        grinder = WorkGrinder(executor_manager=manager, max_wait_seconds=0.01)
        await grinder.start()
        try:
            assert await asyncio.gather(*(grinder.submit(abs, -i) for i in range(9))) == list(
                range(9)
            )
            parts: dict[str, Any] = {"managers": {"cpu": manager}, "grinders": {"jobs": grinder}}
            on_loop = metrics_text_of(**parts)  # on the grinder's loop: no hop
            from_thread = await asyncio.to_thread(functools.partial(metrics_text_of, **parts))
            return on_loop, from_thread
        finally:
            await grinder.stop()
            await manager.stop()

    for text in run(main()):
        families = parse(text)
        labels = {"grinder": "jobs", "manager": "cpu"}
        assert value(families, "neoleasepool_grinder_items_total", outcome="ok", **labels) == 9
        assert value(families, "neoleasepool_grinder_item_latency_seconds_count", **labels) == 9
        assert value(families, "neoleasepool_manager_pools_max", manager="cpu",
                     backend="thread") == 2
        assert "neoleasepool_supervisor_active" not in families


def test_parts_without_a_supervisor_are_checked() -> None:
    with pytest.raises(ValueError, match="must be a LeasedExecutorManager"):
        metrics_text_of(managers={"cpu": object()})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="non-empty strings"):
        metrics_text_of(grinders={"": object()})  # type: ignore[dict-item]
