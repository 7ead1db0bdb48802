"""The process backend's own pool (issue 15), against ``ProcessPoolExecutor``.

Rows, the sides of each alternating within every repetition:

* ``lease.run(x*x)`` round trips, one after the other, on a lease of one
  pool of two workers: backend ``process`` (our :class:`WorkerPool`)
  against ``stdlib-process`` (``ProcessPoolExecutor``), through the same
  manager code (target 1.0x).
* A worker stopped by a time limit is replaced and serving again: the time
  from the item's ``ItemTimeoutError`` to the result of the next call on
  the same one-worker pool (forkserver), median of several, against a
  budget of 0.5 s (ratio = budget / ours).

The process grinder's 20,000-item row is in ``bench_grinder``.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from neoleasepool import ExecutorLease, ItemTimeoutError, LeasedExecutorManager, time_limited

from ._harness import Reporter, Row, alternating_medians_async, manager_kwargs
from ._work import hang, square

REPEAT = 5
ROUND_TRIPS = 2_000


@contextlib.asynccontextmanager
async def _lease(backend: str, workers: int) -> AsyncIterator[ExecutorLease]:
    manager = LeasedExecutorManager(
        **manager_kwargs(backend=backend, max_pools=1, workers_per_pool=workers)
    )
    await manager.start()
    try:
        async with await manager.acquire(owner="bench") as lease:
            yield lease
    finally:
        await manager.stop()


def _round_trips(lease: ExecutorLease) -> Callable[[], Awaitable[Any]]:
    async def side() -> None:
        for i in range(ROUND_TRIPS):
            assert await lease.run(square, i) == i * i

    return side


async def _round_trip_row(reporter: Reporter) -> None:
    async with _lease("process", 2) as ours_lease, _lease("stdlib-process", 2) as theirs_lease:
        ours, theirs = await alternating_medians_async(
            [_round_trips(ours_lease), _round_trips(theirs_lease)], repeat=REPEAT
        )
    reporter.add(
        Row("lease.run(x*x) round trips, process 1x2", "calls/s", ROUND_TRIPS / ours,
            "ProcessPoolExecutor(2)", ROUND_TRIPS / theirs, target=1.0)
    )


async def _replacement_row(reporter: Reporter) -> None:
    seconds = []
    async with _lease("process", 1) as lease:
        await lease.run(square, 1)  # the first worker is up
        for _ in range(REPEAT + 2):
            with contextlib.suppress(ItemTimeoutError):
                await asyncio.wrap_future(lease.executor.submit(time_limited(hang, 0.1), 30))
            start = time.perf_counter()
            await lease.run(square, 2)  # on the replacement
            seconds.append(time.perf_counter() - start)
    reporter.add(
        Row("worker stopped by its limit, serving again (1x1)", "ms",
            statistics.median(seconds) * 1e3, "budget", 500.0, higher_is_better=False,
            target=1.0, notes=f"max {max(seconds) * 1e3:.0f} ms")
    )


async def main(reporter: Reporter) -> None:
    await _round_trip_row(reporter)
    await _replacement_row(reporter)


def run(reporter: Reporter) -> None:
    asyncio.run(main(reporter))
