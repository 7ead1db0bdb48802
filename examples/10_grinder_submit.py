"""WorkGrinder with `submit()`: many callers, few leases.

Forty coroutines each submit one small blocking job and wait for its result.
The grinder gathers them into batches of at most ten, runs each batch under
its own lease, and runs several batches at once on the manager's pools.
"""

from __future__ import annotations

import asyncio
import time

from neoleasepool import LeasedExecutorManager, WorkGrinder


def slow_square(value: int) -> int:
    time.sleep(0.02)  # stands in for blocking I/O
    return value * value


async def main() -> None:
    manager = LeasedExecutorManager(backend="thread", max_pools=4, workers_per_pool=5)
    grinder = WorkGrinder(
        executor_manager=manager,
        batch_size_threshold=10,
        max_wait_seconds=0.5,
        owner_prefix="squares",
    )
    await manager.start()
    await grinder.start()
    try:
        started = time.perf_counter()
        results = await asyncio.gather(*(grinder.submit(slow_square, i) for i in range(40)))
        elapsed = time.perf_counter() - started
        print("results:", results)
        print(f"40 jobs of 20 ms in {elapsed:.2f} s (one at a time would take 0.80 s)")
        stats = grinder.stats()
        print("grinder:", {k: stats[k] for k in ("items_completed", "batches_run", "pending")})
    finally:
        await grinder.stop()
        await manager.stop()


if __name__ == "__main__":
    asyncio.run(main())
