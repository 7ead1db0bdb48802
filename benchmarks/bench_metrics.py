"""What metrics cost: the same work with metrics on (the default) and off.

Rows (issue 17), each against a baseline timed in the same run; the two
sides alternate, in reversed order every other repetition (AB, BA...):
running first was seen to favour a side by a few percent here, more than
the cost being measured.

* 20,000 no-op items through ``submit`` (gathered) on a grinder of 4 pools
  x 4 threads, threshold 20 (the grinder throughput row of
  ``bench_grinder``), ``WorkGrinder(metrics=True)`` against
  ``metrics=False``: at most 5% slower (target 0.95x).
* 8 plain threads each calling the supervised grinder's blocking
  ``submit(noop)`` 2,500 times (the sync submit row of
  ``bench_supervised``), metrics on against off (target 0.95x).
* One ``task_supervisor.metrics_text()`` of a supervisor with 4 lease
  managers, 4 grinders (each with items done, so its histograms are full)
  and 10 background workers, in milliseconds, against the issue's budget
  of 5 ms; and the same through the status server's ``GET /metrics``.

Metrics "off" keeps the counts (they are the grinder's ``stats()``) and
leaves out the per-item timings, which are the only per-item cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

from neoleasepool import (
    BackgroundIntervalWorker,
    LeasedExecutorManager,
    TaskSupervisor,
    WorkGrinder,
)

from ._harness import (
    Reporter,
    Row,
    balanced_medians,
    balanced_medians_async,
    from_threads,
    manager_kwargs,
)
from ._work import noop

REPEAT = 10
ITEMS = 20_000
THREADS = 8
CALLS_PER_THREAD = 2_500
SCRAPES = 50


@contextlib.asynccontextmanager
async def _grinder(metrics: bool) -> AsyncIterator[WorkGrinder]:
    manager = LeasedExecutorManager(**manager_kwargs(max_pools=4, workers_per_pool=4))
    await manager.start()
    grinder = WorkGrinder(executor_manager=manager, batch_size_threshold=20,
                          max_wait_seconds=0.01, lease_seconds=60.0, metrics=metrics)
    await grinder.start()
    try:
        yield grinder
    finally:
        await grinder.stop()
        await manager.stop()


def _submit_all(grinder: WorkGrinder) -> Any:
    async def one_run() -> None:
        results = await asyncio.gather(*(grinder.submit(noop) for _ in range(ITEMS)))
        assert len(results) == ITEMS

    return one_run


async def _async_row(reporter: Reporter) -> None:
    async with _grinder(True) as on, _grinder(False) as off:
        with_metrics, without = await balanced_medians_async(
            [_submit_all(on), _submit_all(off)], repeat=REPEAT
        )
    reporter.add(
        Row("grinder 20k no-op submit 4x4, metrics on vs off", "items/s", ITEMS / with_metrics,
            "metrics=False", ITEMS / without, target=0.95,
            notes="same grinder shape as bench_grinder's first row")
    )


def _sync_row(reporter: Reporter, supervisor: TaskSupervisor) -> None:
    grinders = []
    for metrics in (True, False):
        pool = supervisor.create_lease_manager(
            f"bench-m-{metrics}", **manager_kwargs(max_pools=1, workers_per_pool=4)
        )
        grinders.append(supervisor.create_work_grinder(
            f"bench-g-{metrics}", pool, batch_size_threshold=THREADS, max_wait_seconds=0.001,
            lease_seconds=60.0, metrics=metrics,
        ))
    on, off = grinders
    medians = balanced_medians(
        [lambda: from_threads(lambda: on.submit(noop), THREADS, CALLS_PER_THREAD),
         lambda: from_threads(lambda: off.submit(noop), THREADS, CALLS_PER_THREAD)],
        repeat=REPEAT, warmup=1,
    )
    calls = THREADS * CALLS_PER_THREAD
    reporter.add(
        Row(f"grinder.submit(noop), {THREADS} threads, metrics on vs off", "calls/s",
            calls / medians[0], "metrics=False", calls / medians[1], target=0.95,
            notes="same shape as bench_supervised's first row")
    )


def _scrape_rows(reporter: Reporter, supervisor: TaskSupervisor) -> None:
    for n in range(4):
        pool = supervisor.create_lease_manager(
            f"scrape-m{n}", **manager_kwargs(max_pools=2, workers_per_pool=2)
        )
        grinder = supervisor.create_work_grinder(f"scrape-g{n}", pool, max_wait_seconds=0.001)
        for i in range(200):
            grinder.submit(abs, -i)
    for n in range(10):
        BackgroundIntervalWorker(
            f"scrape-w{n}", _tick, interval=0.2, supervisor=supervisor
        ).start()
    text = supervisor.metrics_text()
    assert text.count('grinder="scrape-g') > 4 * 30 and text.count('worker="scrape-w') >= 40
    times = []
    for _ in range(SCRAPES):
        start = time.perf_counter()
        supervisor.metrics_text()
        times.append(time.perf_counter() - start)
    direct = statistics.median(times) * 1000
    reporter.add(
        Row("metrics_text(), 4 managers, 4 grinders, 10 workers", "ms", direct,
            "budget", 5.0, higher_is_better=False, target=1.0,
            notes=f"median of {SCRAPES}; {len(text.splitlines())} lines")
    )
    url = supervisor.serve_status() + "metrics"
    times = []
    for _ in range(SCRAPES):
        start = time.perf_counter()
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200 and response.read()
        times.append(time.perf_counter() - start)
    served = statistics.median(times) * 1000
    reporter.add(
        Row("GET /metrics, same supervisor", "ms", served, "budget", 5.0,
            higher_is_better=False, target=1.0, notes=f"median of {SCRAPES}, over loopback")
    )


def _tick(**kwargs: Any) -> None:
    return None


def run(reporter: Reporter) -> None:
    asyncio.run(_async_row(reporter))
    supervisor = TaskSupervisor(id="bench_metrics")
    supervisor.set_thread_pool(max_size=32)
    supervisor.start()
    try:
        _sync_row(reporter, supervisor)
        _scrape_rows(reporter, supervisor)
    finally:
        supervisor.stop()
