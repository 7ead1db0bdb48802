"""Soak: mixed load for a long time (``make soak``; not in CI).

Runs ``SOAK_SECONDS`` (default 600) of grinder items on thread and process
backends, direct leases, expiring leases and scale changes, sampling peak
RSS (``/proc/self/status`` VmRSS), thread count and fd count over time, and
prints a report.  Drift is the growth of RSS from the first quarter of the
run to the last; it must stay bounded.
"""

from __future__ import annotations

import concurrent.futures
import os
import random
import threading
import time

import pytest

from neoleasepool import LeaseExpiredError, TaskSupervisor

from .chaos_work import compute, fail_with
from .figures import report
from .resources import open_fds

pytestmark = pytest.mark.soak

SECONDS = float(os.environ.get("SOAK_SECONDS", "600"))


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_soak_mixed_load(request: pytest.FixtureRequest) -> None:
    rng = random.Random(11)
    units = {"value": 10}
    sup = TaskSupervisor(id="soak")
    sup.set_thread_pool(max_size=4)
    sup.start()
    samples: list[tuple[float, int, int, int]] = []
    counts = {"items": 0, "leases": 0, "expired": 0, "errors": 0}
    try:
        threads_pool = sup.create_lease_manager(
            "cpu-t", backend="thread", max_pools=3, workers_per_pool=2,
            size_provider=lambda: units["value"], units_per_pool=10, check_interval=1,
        )
        process_pool = sup.create_lease_manager(
            "cpu-p", backend="process", max_pools=2, workers_per_pool=2,
        )
        short = sup.create_lease_manager(
            "short", backend="thread", max_pools=1, lease_grace_seconds=0
        )
        grinders = [
            sup.create_work_grinder("g-t", threads_pool, batch_size_threshold=50,
                                    max_wait_seconds=0.01),
            sup.create_work_grinder("g-p", process_pool, batch_size_threshold=50,
                                    max_wait_seconds=0.01),
        ]
        start = time.monotonic()
        next_sample = start
        rounds = 0
        while time.monotonic() - start < SECONDS:
            rounds += 1
            grinder = grinders[rounds % 2]
            futures = [
                grinder.enqueue(fail_with if i % 97 == 0 else compute, i) for i in range(500)
            ]
            done, _ = concurrent.futures.wait(futures, timeout=120)
            assert len(done) == len(futures)
            for i, future in enumerate(futures):
                if i % 97 == 0:
                    assert isinstance(future.exception(), ValueError)
                    counts["errors"] += 1
                else:
                    assert future.result() == compute(i)
            counts["items"] += len(futures)
            with threads_pool.lease() as lease:
                assert lease.run(compute, rounds, timeout=60) == compute(rounds)
                counts["leases"] += 1
            if rounds % 20 == 0:
                held = short.acquire(lease_seconds=0.02)
                while held.active:
                    threading.Event().wait(0.01)
                try:
                    held.executor.submit(compute, 1)
                except LeaseExpiredError:
                    counts["expired"] += 1
                units["value"] = rng.choice([0, 10, 25, -1, 10**100])
                threads_pool.notify_scale_changed()
            now = time.monotonic()
            if now >= next_sample:
                samples.append(
                    (now - start, _rss_kib(), threading.active_count(), len(open_fds()))
                )
                next_sample = now + max(1.0, SECONDS / 60)
    finally:
        sup.stop(wait=60)
    samples.append((time.monotonic() - start, _rss_kib(), threading.active_count(),
                    len(open_fds())))
    quarter = max(1, len(samples) // 4)
    first = max(s[1] for s in samples[:quarter])
    last = max(s[1] for s in samples[-quarter:])
    peak = max(s[1] for s in samples)
    threads = [s[2] for s in samples]
    fds = [s[3] for s in samples]
    for t, rss, n_threads, n_fds in samples[:: max(1, len(samples) // 12)]:
        print(f"  t={t:7.1f}s rss={rss / 1024:7.1f}MiB threads={n_threads} fds={n_fds}")
    report(
        request.config, "soak", seconds=round(SECONDS), **counts,
        peak_rss_mib=round(peak / 1024, 1), rss_drift_mib=round((last - first) / 1024, 1),
        threads_min_max=f"{min(threads)}..{max(threads)}",
        fds_min_max=f"{min(fds)}..{max(fds)}", samples=len(samples),
    )
    assert last - first < 64 * 1024, "RSS grew more than 64 MiB over the run"
    assert max(threads[1:]) - min(threads[1:]) < 60
