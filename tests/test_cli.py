"""``python -m neoleasepool``: info, bench and the live demo.

The demo runs in a fresh interpreter, as a user starts it: once with stdout
piped (plain lines, no escapes) and once on a pseudo-terminal (redrawn in
place).  Its summary reports the threads and child processes left after
``task_supervisor.stop()``; both must be "none".
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from neoleasepool import __version__
from neoleasepool.cli import commands as cli
from neoleasepool.cli.render import Snapshot, frame_lines, plain_line, progress_bar

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO = [sys.executable, "-m", "neoleasepool", "demo", "--seconds", "3"]
DEMO_TIMEOUT_SECONDS = 90


def _assert_clean_summary(output: str) -> None:
    assert "neoleasepool demo: summary after" in output
    assert re.search(r"threads left\s+none", output), output
    assert re.search(r"child processes left\s+none", output), output
    assert re.search(r"each ended exactly once\s+yes", output), output


def test_info_prints_version_python_and_backends(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"neoleasepool {__version__}" in out
    assert "Python" in out and "CPU count" in out
    for backend in ("thread", "process", "interpreter"):
        assert re.search(rf"^  {backend}\s+(available|unavailable: .+)$", out, re.M), out
    assert "max_size" in out and "max_pools" in out
    # Whether threads run Python in parallel here (a free-threaded build).
    gil_off = bool(sysconfig.get_config_var("Py_GIL_DISABLED")) and not getattr(
        sys, "_is_gil_enabled", lambda: True
    )()
    expected = r"GIL\s+disabled \(free-threaded" if gil_off else r"GIL\s+enabled"
    assert re.search(expected, out), out


def test_bench_help_lists_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["bench", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--json" in out and "--only" in out


def test_bench_outside_a_checkout_says_where_the_suite_lives(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "find_benchmarks", lambda start=None: None)
    assert cli.main(["bench"]) == 2
    assert "no benchmarks/ directory" in capsys.readouterr().err


def test_bench_rejects_an_unknown_module_and_lists_the_known_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["bench", "--only", "nonesuch"]) == 2
    err = capsys.readouterr().err
    assert "nonesuch" in err and "manager" in err and "grinder" in err


def test_find_benchmarks_locates_the_repository_from_a_subdirectory() -> None:
    assert cli.find_benchmarks(REPO_ROOT / "doc") == REPO_ROOT


@pytest.mark.parametrize("seconds", ["0", "-1", "nan", "inf", "soon"])
def test_demo_rejects_bad_seconds(seconds: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["demo", "--seconds", seconds])
    assert exit_info.value.code == 2
    assert "--seconds" in capsys.readouterr().err


def test_demo_piped_prints_plain_lines_and_a_summary_and_exits_0() -> None:
    completed = subprocess.run(
        DEMO, cwd=REPO_ROOT, capture_output=True, text=True,
        timeout=DEMO_TIMEOUT_SECONDS, check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "\x1b" not in completed.stdout
    assert re.search(r"^\[ *\d+\.\d/3s +\d+%\] devices=\d+", completed.stdout, re.M)
    _assert_clean_summary(completed.stdout)
    # The hung job was stopped by its time limit and its pool went on.
    assert re.search(r"jobs stopped by time limit\s+1", completed.stdout), completed.stdout
    assert "Traceback" not in completed.stderr, completed.stderr


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_demo_on_a_terminal_redraws_in_place_and_exits_0() -> None:
    master, slave = os.openpty()
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "120", "LINES": "40"}
    process = subprocess.Popen(
        DEMO, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=slave,
        stderr=subprocess.PIPE, env=env,
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + DEMO_TIMEOUT_SECONDS
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], deadline - time.monotonic())
            if not ready:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        returncode = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stderr is not None
        stderr = process.stderr.read().decode()
        process.stderr.close()
    output = b"".join(chunks).decode("utf-8", "replace")
    assert returncode == 0, output + stderr
    assert "\x1b[2K" in output and re.search(r"\x1b\[\d+F", output)  # redrawn in place
    assert "pools  backend" in output and "leases owner" in output
    _assert_clean_summary(output)


def _snapshot() -> Snapshot:
    lease = {
        "owner": "analyse:cam-007", "state": "live", "pending": 1,
        "seconds_until_soft_expiry": 1.5, "seconds_until_hard_expiry": 2.0,
    }
    manager = {
        "backend": "process", "desired": 2, "total": 3, "leased": 1, "available": 2,
        "waiting": 0, "leases_granted": 12, "leases_revoked": 1, "leases": [lease],
    }
    grinder = {
        "name": "readings", "pending": 37, "batches_in_flight": 2, "items_completed": 900,
        "items_failed": 9, "items_cancelled": 4, "batches_run": 30,
    }
    return Snapshot(
        elapsed=5.0, seconds=10.0, devices=12, devices_peak=20, last_scan=(2, 1),
        managers=[("cpu", manager)], grinder=grinder, items_per_second=1234.0,
    )


def test_frame_shows_pools_leases_grinder_and_progress() -> None:
    text = "\n".join(frame_lines(_snapshot(), unicode=False, bar_width=10))
    assert "[#####.....]" in text and "50%" in text
    assert re.search(r"cpu\s+process\s+2\s+3\s+1\s+2\s+0\s+12\s+1", text), text
    assert re.search(r"analyse:cam-007\s+live\s+1\s+1\.5 s\s+2\.0 s", text), text
    assert "queue    37" in text and "items/s    1,234" in text


def test_plain_line_has_no_escapes_and_the_key_figures() -> None:
    line = plain_line(_snapshot())
    assert "\x1b" not in line and "\n" not in line
    assert "devices=12" in line and "cpu=1/3/2" in line and "queue=37" in line


def test_progress_bar_is_clamped_to_its_width() -> None:
    assert progress_bar(1.7, 4, unicode=False) == "####"
    assert progress_bar(-1.0, 4, unicode=False) == "...."


def test_demo_serve_prints_the_url_serves_and_stops_on_ctrl_c() -> None:
    import http.client
    import json
    import queue
    import signal
    import socket
    import threading
    import urllib.parse

    process = subprocess.Popen(
        [*DEMO, "--serve"], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=pump, name="demo-stdout")
    reader.start()
    deadline = time.monotonic() + DEMO_TIMEOUT_SECONDS
    seen: list[str] = []

    def next_line() -> str:
        line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        assert line is not None, "".join(seen)
        seen.append(line)
        return line

    def get(port: int, path: str) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    try:
        first = next_line()  # the URL comes first
        match = re.fullmatch(r"status page: (http://127\.0\.0\.1:(\d+)/)\n", first)
        assert match, first
        port = int(match.group(2))
        assert urllib.parse.urlsplit(match.group(1)).port == port
        status, body = get(port, "/status.json")
        assert status == 200
        shown = json.loads(body)
        assert {m["name"] for m in shown["managers"]} == {"io", "cpu"}
        assert [g["name"] for g in shown["grinders"]] == ["readings"]
        while "press Ctrl-C" not in next_line():
            pass
        # The work is done and the page is still served, until Ctrl-C.
        assert get(port, "/healthz") == (200, b"ok\n")
        process.send_signal(signal.SIGINT)
        returncode = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join()
        assert process.stderr is not None and process.stdout is not None
        stderr = process.stderr.read()
        process.stderr.close()
        process.stdout.close()
    output = "".join(seen) + "".join(iter(lines.get_nowait, None))
    assert returncode == 0, output + stderr
    _assert_clean_summary(output)
    assert "Traceback" not in stderr, stderr
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
