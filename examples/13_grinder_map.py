"""``map`` where you would use ``ProcessPoolExecutor.map``.

If your code looks like this::

    with ProcessPoolExecutor(2) as pool:
        for result in pool.map(collatz_steps, range(1, 100_001), chunksize=500):
            ...

the same loop runs through a supervised grinder with no chunk size to tune:
inputs travel in chunks that grow from one input (the first result comes
back at once) to as many as about 10 ms of work, and only a window of
chunks is out at a time, so a generator of any length never sits in memory.
The grinder leases its process pool from the manager, so other work can
share it, and ``task_supervisor.stop()`` ends everything.

The second part uses the async form, ``async for`` over ``grinder.map``,
with ``ordered=False`` and an input error returned in place
(``return_exceptions=True``).

Run from the repository root::

    python examples/13_grinder_map.py
"""

from __future__ import annotations

import asyncio
import time

from neoleasepool import LeasedExecutorManager, WorkGrinder, task_supervisor


def collatz_steps(n: int) -> int:
    """How many Collatz steps ``n`` takes to reach 1."""
    steps = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


def inverse(x: int) -> float:
    return 1 / x


def blocking_part() -> None:
    task_supervisor.start()
    try:
        pool = task_supervisor.create_lease_manager(
            "cpu", backend="process", max_pools=1, workers_per_pool=2
        )
        grinder = task_supervisor.create_work_grinder("collatz", pool)
        start = time.perf_counter()
        longest = max(
            zip(grinder.map(collatz_steps, range(1, 100_001)), range(1, 100_001), strict=True)
        )
        seconds = time.perf_counter() - start
        stats = grinder.stats()
        print(f"longest Collatz run below 100,001: {longest[1]} takes {longest[0]} steps")
        print(
            f"{stats['map_items_done']:,} inputs in {stats['items_submitted']} chunks, "
            f"{seconds:.2f} s"
        )
    finally:
        task_supervisor.stop()


async def async_part() -> None:
    manager = LeasedExecutorManager(backend="thread", max_pools=2, workers_per_pool=2)
    await manager.start()
    grinder = WorkGrinder(executor_manager=manager)
    await grinder.start()
    try:
        results = [
            r async for r in grinder.map(inverse, [4, 2, 0, 1], return_exceptions=True)
        ]
        print("in order, the error in its place:", results)
        unordered = sorted([r async for r in grinder.map(abs, range(-3, 1), ordered=False)])
        print("as completed, then sorted:", unordered)
    finally:
        await grinder.stop()
        await manager.stop()


if __name__ == "__main__":
    blocking_part()
    asyncio.run(async_part())
