"""WorkGrinder with `enqueue()`: queue now, await later, cancel if needed.

`enqueue()` returns an asyncio future at once.  A future cancelled while its
item is still queued leaves the queue immediately and its job never runs.
"""

from __future__ import annotations

import asyncio

from neoleasepool import LeasedExecutorManager, WorkGrinder

ran: list[int] = []


def label(value: int) -> str:
    ran.append(value)
    return f"item-{value}"


async def main() -> None:
    manager = LeasedExecutorManager(backend="thread", max_pools=1, workers_per_pool=2)
    # A long deadline and a high threshold keep everything queued until we flush.
    grinder = WorkGrinder(executor_manager=manager, batch_size_threshold=100, max_wait_seconds=60)
    await manager.start()
    await grinder.start()
    try:
        futures = [await grinder.enqueue(label, i) for i in range(6)]
        print("queued:", grinder.stats()["pending"])
        futures[1].cancel()
        futures[4].cancel()
        print("after cancelling two:", grinder.stats()["pending"])
    finally:
        # stop() drains: the four remaining jobs run before it returns.
        await grinder.stop()
        await manager.stop()
    done = [f.result() for f in futures if not f.cancelled()]
    print("results:", done)
    print("jobs that ran:", sorted(ran))


if __name__ == "__main__":
    asyncio.run(main())
