"""The status page as a browser renders it: headless Chromium.

A supervisor runs a lease manager, a grinder kept busy by a thread, and a
background worker; Chromium loads the page twice (``--dump-dom`` after a
virtual-time budget, in which the page's script fetches ``status.json``
several times) and once more for a screenshot. The figures are read from
the DOM's data attributes (``data-grinder="g" data-field="completed"``).

Skipped when Chromium is not installed (``make test`` runs
``tools/need_chromium.sh`` first, which installs it where it can).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from .support import wait_until
from .test_status_page import Served, serve_a_supervisor, sometimes_fails

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _apt_can_install() -> bool:
    """Whether Debian's chromium could be installed here (apt-get, as root
    or with sudo that needs no password): then its absence is a failure."""
    if shutil.which("apt-get") is None:
        return False
    if os.geteuid() == 0:
        return True
    sudo = shutil.which("sudo")
    return sudo is not None and subprocess.run(
        [sudo, "-n", "true"], capture_output=True, check=False
    ).returncode == 0


pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not _apt_can_install(),
    reason="headless Chromium is not installed and apt-get cannot install it here "
    "(no apt-get, or not root): install Chromium to run the browser test",
)


@pytest.fixture(autouse=True)
def chromium_present() -> None:
    if CHROMIUM is None:  # apt-get could have installed it: that is a failure
        pytest.fail(
            "headless Chromium is missing although apt-get can install it here: run "
            "tools/need_chromium.sh (make test runs it first), or apt-get install -y chromium"
        )

#: Seconds Chromium may take for one page before it is killed.
CHROMIUM_TIMEOUT = 90
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-proxy-server", "--hide-scrollbars", "--log-level=3", "--virtual-time-budget=4000",
]


def chromium(url: str, *output: str) -> str:
    """Run headless Chromium on ``url`` with ``output`` flags; its stdout.

    Chromium runs in a session of its own with a fresh profile: on a timeout
    its whole process group is killed, and the profile is always removed.
    """
    assert CHROMIUM is not None
    profile = tempfile.mkdtemp(prefix="neoleasepool-chromium-")
    command = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *output, url]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=CHROMIUM_TIMEOUT)
    finally:
        # On a timeout (or anything else), and for helpers left behind.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        shutil.rmtree(profile, ignore_errors=True)
    assert process.returncode == 0, stderr[-2000:]
    return stdout


class Figures(HTMLParser):
    """Collects ``data-value`` by (kind, name, field) and the stamp's attributes."""

    KINDS = ("manager", "grinder", "aloop", "worker")

    def __init__(self, dom: str) -> None:
        super().__init__()
        self.values: dict[tuple[str, str, str], str] = {}
        self.stamp: dict[str, str | None] = {}
        self.plots: set[tuple[str, str]] = set()
        self.feed(dom)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id") == "updated":
            self.stamp = a
        for kind in self.KINDS:
            name = a.get(f"data-{kind}")
            if name is None:
                continue
            if a.get("data-field") is not None and a.get("data-value") is not None:
                self.values[(kind, name, str(a["data-field"]))] = str(a["data-value"])
            if a.get("data-plot") is not None:
                self.plots.add((name, str(a["data-plot"])))

    def number(self, kind: str, name: str, field: str) -> float:
        return float(self.values[(kind, name, field)])


def keep_busy(served: Served, stop: threading.Event) -> None:
    """Feed the grinder until ``stop`` is set (a thread's target)."""
    x = 1
    while not stop.is_set():
        futures = [served.grinder.enqueue(sometimes_fails, x + i) for i in range(20)]
        for future in futures:
            try:
                future.result(timeout=30)
            except ValueError:
                pass
        x += 20


@pytest.fixture
def busy(request: pytest.FixtureRequest) -> Iterator[Served]:
    """A served supervisor whose grinder a thread keeps busy until the end."""
    for served in serve_a_supervisor(request.node.name):
        stop = threading.Event()
        feeder = threading.Thread(target=keep_busy, args=(served, stop), name="browser-feeder")
        feeder.start()
        try:
            yield served
        finally:
            stop.set()
            feeder.join()


def completed(served: Served) -> int:
    return int(served.grinder.stats()["items_completed"])


def test_the_page_renders_live_figures_in_chromium(busy: Served, tmp_path: Path) -> None:
    wait_until(lambda: completed(busy) > 0, timeout=15)
    first = Figures(chromium(busy.url, "--dump-dom"))
    assert first.stamp.get("data-updates") not in (None, "0"), first.stamp
    assert float(first.stamp["data-time"] or 0) > 0
    manager = busy.manager.stats()
    assert first.number("manager", "io", "max_pools") == manager["max_pools"] == 2
    assert first.number("manager", "io", "total") >= 1
    assert first.number("manager", "io", "desired") >= 1
    shown = first.number("grinder", "g", "completed")
    assert shown > 0
    assert first.number("grinder", "g", "failed") > 0
    assert first.number("worker", "tick", "runs") > 0
    assert ("__supervisor__", "lag") in first.plots
    assert {("g", "queue"), ("g", "items_per_second"), ("g", "latency")} <= first.plots

    wait_until(lambda: completed(busy) > shown, timeout=15)
    second = Figures(chromium(busy.url, "--dump-dom"))
    assert second.number("grinder", "g", "completed") > shown

    shot = tmp_path / "status.png"
    chromium(busy.url, f"--screenshot={shot}", "--window-size=1280,900")
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000


def test_the_page_carries_its_token_to_status_json(request: pytest.FixtureRequest) -> None:
    token = "browser-token-0123456789"
    for served in serve_a_supervisor(request.node.name, token=token):
        figures = Figures(chromium(served.url + "?token=" + token, "--dump-dom"))
        assert figures.stamp.get("data-updates") not in (None, "0"), figures.stamp
        assert figures.number("manager", "io", "max_pools") == 2
