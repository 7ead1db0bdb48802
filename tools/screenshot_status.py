#!/usr/bin/env python3
"""Write ``doc/status-page.png``: the status page of a busy supervisor.

    .venv/bin/python tools/screenshot_status.py [--seconds 20] [--out doc/status-page.png]

A supervisor of its own (not the global one) runs what the demo runs, in
small: a thread lease manager ``io`` with a grinder ``readings`` fed by
three threads at a rate that rises and falls, a process lease manager
``cpu`` leased by two analyser threads, and a background worker
``fleet-scanner`` that fails now and then. After ``--seconds`` (so that the
plots have a history), headless Chromium takes the screenshot; then
everything is stopped. Needs Chromium (``tools/need_chromium.sh``).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from neoleasepool import BackgroundIntervalWorker, TaskSupervisor
from neoleasepool.cli.fleet import fingerprint, read_sensor

ROOT = Path(__file__).resolve().parent.parent
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-proxy-server", "--hide-scrollbars", "--log-level=3", "--virtual-time-budget=4000",
]


def screenshot(url: str, out: Path, size: str) -> None:
    """Have headless Chromium write ``url``'s screenshot to ``out``."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("no chromium on PATH: run tools/need_chromium.sh")
    profile = tempfile.mkdtemp(prefix="neoleasepool-shot-")
    command = [browser, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={out}",
               f"--window-size={size}", url]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        _, stderr = process.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        shutil.rmtree(profile, ignore_errors=True)
    if process.returncode != 0 or not out.is_file():
        sys.exit(f"chromium failed ({process.returncode}): {stderr[-1000:]}")


class Load:
    """The threads that keep the supervisor busy until :attr:`stop` is set."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.started = time.monotonic()
        self.threads: list[threading.Thread] = []
        self.scans = 0

    def rate(self) -> float:
        """Batches per second per feeder: rises and falls every 20 s."""
        return 6 + 5 * math.sin((time.monotonic() - self.started) * math.pi / 10)

    def feeder(self, index: int, grinder: Any) -> None:
        seq = index
        while not self.stop.wait(1 / self.rate()):
            for _ in range(8):
                seq += 3
                grinder.enqueue(read_sensor, f"meter-{index:02d}", seq)

    def analyser(self, index: int, cpu: Any) -> None:
        rng = random.Random(index)
        while not self.stop.wait(rng.uniform(0.1, 0.6)):
            owner = f"analyse:cam-{rng.randrange(100):03d}"
            with contextlib.suppress(TimeoutError), cpu.lease(
                owner=owner, lease_seconds=5, timeout=1.0
            ) as lease:
                lease.run(fingerprint, "cam", 20_000)

    def hold(self, manager: Any, owner: str) -> None:
        """Hold one long lease, as a long job would (it shows in the lease table)."""
        with manager.lease(owner=owner, lease_seconds=300):
            self.stop.wait()

    def scan(self, **_: Any) -> None:
        self.scans += 1
        if self.scans % 7 == 0:
            raise ConnectionError(f"fleet registry did not answer (scan {self.scans})")

    def start(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self.threads.append(thread)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="load before the shot")
    parser.add_argument("--out", type=Path, default=ROOT / "doc" / "status-page.png")
    parser.add_argument("--size", default="1280,1100", help="window size, W,H")
    args = parser.parse_args()
    supervisor = TaskSupervisor(id="demo")
    supervisor.start()
    load = Load()
    try:
        io = supervisor.create_lease_manager(
            "io", backend="thread", max_pools=4, workers_per_pool=4, min_pools=1
        )
        cpu = supervisor.create_lease_manager(
            "cpu", backend="process", max_pools=2, workers_per_pool=1, min_pools=1
        )
        grinder = supervisor.create_work_grinder(
            "readings", io, batch_size_threshold=64, max_wait_seconds=0.05, lease_seconds=5
        )
        BackgroundIntervalWorker(
            "fleet-scanner", load.scan, interval=0.25, supervisor=supervisor,
            on_error=lambda: None,
        ).start()
        url = supervisor.serve_status()
        print(f"status page: {url} (shot in {args.seconds:.0f} s)", flush=True)
        for i in range(3):
            load.start(load.feeder, i, grinder)
        for i in range(2):
            load.start(load.analyser, i, cpu)
        load.start(load.hold, io, "nightly-report")
        load.stop.wait(args.seconds)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        screenshot(url, args.out.resolve(), args.size)
        print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes)")
    finally:
        load.stop.set()
        for thread in load.threads:
            thread.join()
        supervisor.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
