"""WorkGrinder: throughput, pool concurrency, chunking and cancellation.

Rows (issue 3), each against a baseline timed in the same run:

* 20,000 no-op items through ``submit`` (gathered), against plain
  ``loop.run_in_executor`` on one 4-thread ``ThreadPoolExecutor`` and
  against leasepool 0.1.3's ``WorkGrinder`` with the same arguments.
* 800 items that block 2 ms each, ``max_pools=4``, threshold 16, 4 threads
  per pool: wall time against the ideal (800 x 2 ms / 16 workers), and
  against leasepool's grinder.
* 20,000 tiny items (``x * x``) on the process backend, one pool of two
  workers: ours against leasepool's process grinder.
* 100,000 items enqueued then all cancelled, against 10,000: the time per
  item should not grow (linear total time).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from neoleasepool import LeasedExecutorManager, WorkGrinder

from ._harness import (
    Reporter,
    Row,
    alternating_medians_async,
    grinder_kwargs,
    have,
    manager_kwargs,
)
from ._work import block_2ms, noop, square

REPEAT = 5


async def _median(fn: Callable[[], Awaitable[Any]], repeat: int = REPEAT) -> float:
    (seconds,) = await alternating_medians_async([fn], repeat=repeat)
    return seconds


async def _grinder_time(
    module: Any,
    backend: str,
    max_pools: int,
    workers: int,
    threshold: int,
    fn: Callable[..., Any],
    items: int,
    repeat: int = REPEAT,
) -> float:
    """Median seconds to push ``items`` calls of ``fn(i)`` through a grinder
    of ``module`` (neoleasepool or leasepool), all gathered at once."""
    kwargs = manager_kwargs(backend=backend, max_pools=max_pools, workers_per_pool=workers)
    manager = module.LeasedExecutorManager(**kwargs)
    await manager.start()
    batching = grinder_kwargs(threshold=threshold, max_wait_seconds=0.01)
    grinder = module.WorkGrinder(executor_manager=manager, **batching)
    await grinder.start()
    try:

        async def one_run() -> None:
            results = await asyncio.gather(*(grinder.submit(fn, i) for i in range(items)))
            assert len(results) == items

        return await _median(one_run, repeat)
    finally:
        await grinder.stop()
        await manager.stop()


async def _executor_time(fn: Callable[..., Any], items: int, workers: int) -> float:
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(workers) as pool:

        async def one_run() -> None:
            await asyncio.gather(*(loop.run_in_executor(pool, fn, i) for i in range(items)))

        return await _median(one_run)


def _leasepool() -> Any:
    if not have("leasepool"):
        return None
    import leasepool

    return leasepool


async def _throughput_rows(reporter: Reporter) -> None:
    import neoleasepool

    items = 20_000
    ours = await _grinder_time(neoleasepool, "thread", 1, 4, 20, noop, items)
    plain = await _executor_time(noop, items, 4)
    reporter.add(
        Row("grinder 20k no-op submit vs run_in_executor", "items/s", items / ours,
            "run_in_executor(TPE 4)", items / plain, target=1.0)
    )
    leasepool = _leasepool()
    theirs = None
    if leasepool is not None:
        theirs = await _grinder_time(leasepool, "thread", 1, 4, 20, noop, items, repeat=3)
    reporter.add(
        Row("grinder 20k no-op submit vs leasepool", "items/s", items / ours,
            "leasepool 0.1.3", None if theirs is None else items / theirs, target=3.0)
    )


async def _concurrency_rows(reporter: Reporter) -> None:
    import neoleasepool

    items, ideal = 800, 800 * 0.002 / 16
    ours = await _grinder_time(neoleasepool, "thread", 4, 4, 16, block_2ms, items)
    reporter.add(
        Row("grinder 800x2ms, 4 pools: wall vs ideal", "s", ours, "ideal", ideal,
            higher_is_better=False, target=1 / 1.3, notes="ratio = ideal / ours")
    )
    leasepool = _leasepool()
    theirs = None
    if leasepool is not None:
        theirs = await _grinder_time(leasepool, "thread", 4, 4, 16, block_2ms, items, repeat=3)
    reporter.add(
        Row("grinder 800x2ms, 4 pools vs leasepool", "s", ours, "leasepool 0.1.3", theirs,
            higher_is_better=False)
    )


async def _process_rows(reporter: Reporter) -> None:
    import neoleasepool

    items = 20_000
    ours = await _grinder_time(neoleasepool, "process", 1, 2, 500, square, items)
    leasepool = _leasepool()
    theirs = None
    if leasepool is not None:
        theirs = await _grinder_time(leasepool, "process", 1, 2, 500, square, items, repeat=1)
    reporter.add(
        Row("grinder 20k x*x, process 1x2 vs leasepool", "items/s", items / ours,
            "leasepool 0.1.3", None if theirs is None else items / theirs, target=10.0)
    )


async def _cancel_time(items: int) -> float:
    manager = LeasedExecutorManager(**manager_kwargs(max_pools=1, workers_per_pool=4))
    await manager.start()
    # A threshold and deadline no test reaches: everything stays queued.
    grinder = WorkGrinder(
        executor_manager=manager, batch_size_threshold=10 * items, max_wait_seconds=3600
    )
    await grinder.start()
    try:

        async def one_run() -> None:
            futures = [await grinder.enqueue(noop) for _ in range(items)]
            for future in futures:
                future.cancel()
            assert grinder.stats()["pending"] == 0

        return await _median(one_run, 3)
    finally:
        await grinder.stop()
        await manager.stop()


async def _cancel_rows(reporter: Reporter) -> None:
    small, large = await _cancel_time(10_000), await _cancel_time(100_000)
    reporter.add(
        Row("enqueue+cancel: per-item time 100k vs 10k", "us/item", large / 100_000 * 1e6,
            "10k items", small / 10_000 * 1e6, higher_is_better=False, target=0.7,
            notes="1.0 = perfectly linear")
    )


def run(reporter: Reporter) -> None:
    """Run every grinder row."""
    for rows in (_throughput_rows, _concurrency_rows, _process_rows, _cancel_rows):
        asyncio.run(rows(reporter))
