"""WorkGrinder: throughput, pool concurrency, chunking and cancellation.

Rows (issues 3 and 14), each against a baseline timed in the same run; where
a row has two or more sides, they alternate within every repetition:

* 20,000 no-op items through ``submit`` (gathered), 4 pools x 4 threads,
  threshold 20, against plain ``loop.run_in_executor`` on one 4-thread
  ``ThreadPoolExecutor`` (target 4x); and, on 1 pool x 4 threads, against
  leasepool 0.1.3's ``WorkGrinder`` with the same arguments.
* 800 items that block 2 ms each, 4 pools x 4 threads, threshold 16: wall
  time against a ``ThreadPoolExecutor(16)`` doing the same work (800
  ``loop.run_in_executor`` calls, all awaited), which must not be more than
  1.1x faster (ratio = TPE(16) / ours >= 1/1.1); and against leasepool's
  grinder of the same shape.
* 20,000 tiny items (``x * x``) on the process backend, one pool of two
  workers: ours against leasepool's process grinder.
* 100,000 items enqueued then all cancelled, against 10,000: the time per
  item should not grow (linear total time).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
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
NOOP_ITEMS = 20_000
SLEEP_ITEMS = 800

Timed = Callable[[], Awaitable[Any]]


async def _medians(sides: list[Timed], repeat: int = REPEAT) -> list[float]:
    return await alternating_medians_async(sides, repeat=repeat)


@contextlib.asynccontextmanager
async def _grinder(
    module: Any, backend: str, max_pools: int, workers: int, threshold: int
) -> AsyncIterator[Any]:
    """A started grinder of ``module`` (neoleasepool or leasepool) on a
    manager of ``max_pools`` pools x ``workers``; stopped on exit."""
    kwargs = manager_kwargs(backend=backend, max_pools=max_pools, workers_per_pool=workers)
    manager = module.LeasedExecutorManager(**kwargs)
    await manager.start()
    try:
        batching = grinder_kwargs(threshold=threshold, max_wait_seconds=0.01)
        grinder = module.WorkGrinder(executor_manager=manager, **batching)
        await grinder.start()
        try:
            yield grinder
        finally:
            await grinder.stop()
    finally:
        await manager.stop()


def _through_grinder(grinder: Any, fn: Callable[..., Any], items: int) -> Timed:
    """One run: ``items`` calls of ``fn(i)`` submitted to ``grinder``, all
    gathered at once."""

    async def one_run() -> None:
        results = await asyncio.gather(*(grinder.submit(fn, i) for i in range(items)))
        assert len(results) == items

    return one_run


def _through_executor(pool: ThreadPoolExecutor, fn: Callable[..., Any], items: int) -> Timed:
    """One run: ``items`` calls of ``fn(i)`` through ``loop.run_in_executor``
    on ``pool``, all gathered at once."""

    async def one_run() -> None:
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(pool, fn, i) for i in range(items)))

    return one_run


def _leasepool() -> Any:
    if not have("leasepool"):
        return None
    import leasepool

    return leasepool


async def _with_leasepool(
    stack: contextlib.AsyncExitStack,
    sides: list[Timed],
    shape: tuple[int, int, int],
    fn: Callable[..., Any],
    items: int,
) -> bool:
    """Append a side for leasepool's thread grinder of ``shape`` (pools,
    workers, threshold), if leasepool is installed."""
    leasepool = _leasepool()
    if leasepool is None:
        return False
    grinder = await stack.enter_async_context(_grinder(leasepool, "thread", *shape))
    sides.append(_through_grinder(grinder, fn, items))
    return True


async def _throughput_rows(reporter: Reporter) -> None:
    import neoleasepool

    items = NOOP_ITEMS
    async with _grinder(neoleasepool, "thread", 4, 4, 20) as grinder:
        with ThreadPoolExecutor(4, thread_name_prefix="bench-plain") as plain:
            ours, plain_s = await _medians(
                [_through_grinder(grinder, noop, items), _through_executor(plain, noop, items)]
            )
    reporter.add(
        Row("grinder 20k no-op submit 4x4 vs run_in_executor", "items/s", items / ours,
            "run_in_executor(TPE 4)", items / plain_s, target=4.0,
            notes="4 pools x 4 threads, threshold 20")
    )
    async with contextlib.AsyncExitStack() as stack:
        grinder = await stack.enter_async_context(_grinder(neoleasepool, "thread", 1, 4, 20))
        sides = [_through_grinder(grinder, noop, items)]
        found = await _with_leasepool(stack, sides, (1, 4, 20), noop, items)
        medians = await _medians(sides, repeat=3)
    reporter.add(
        Row("grinder 20k no-op submit vs leasepool", "items/s", items / medians[0],
            "leasepool 0.1.3", items / medians[1] if found else None, target=3.0,
            notes="1 pool x 4 threads, threshold 20, both sides")
    )


async def _concurrency_rows(reporter: Reporter) -> None:
    import neoleasepool

    items, ideal = SLEEP_ITEMS, SLEEP_ITEMS * 0.002 / 16
    async with contextlib.AsyncExitStack() as stack:
        grinder = await stack.enter_async_context(_grinder(neoleasepool, "thread", 4, 4, 16))
        plain = stack.enter_context(ThreadPoolExecutor(16, thread_name_prefix="bench-plain"))
        sides = [_through_grinder(grinder, block_2ms, items),
                 _through_executor(plain, block_2ms, items)]
        found = await _with_leasepool(stack, sides, (4, 4, 16), block_2ms, items)
        medians = await _medians(sides)
    ours = medians[0]
    reporter.add(
        Row("grinder 800x2ms, 4x4 vs TPE(16)", "s", ours, "run_in_executor(TPE 16)",
            medians[1], higher_is_better=False, target=1 / 1.1,
            notes=f"ratio = TPE(16) / ours; threshold 16; ideal {ideal:g} s")
    )
    reporter.add(
        Row("grinder 800x2ms, 4 pools vs leasepool", "s", ours, "leasepool 0.1.3",
            medians[2] if found else None, higher_is_better=False)
    )


async def _process_time(module: Any, repeat: int) -> float:
    async with _grinder(module, "process", 1, 2, 500) as grinder:
        (seconds,) = await _medians([_through_grinder(grinder, square, NOOP_ITEMS)], repeat)
    return seconds


async def _process_rows(reporter: Reporter) -> None:
    import neoleasepool

    items = NOOP_ITEMS
    ours = await _process_time(neoleasepool, REPEAT)
    leasepool = _leasepool()
    theirs = None if leasepool is None else await _process_time(leasepool, 1)
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

        (seconds,) = await _medians([one_run], 3)
        return seconds
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
