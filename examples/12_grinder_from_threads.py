"""Feeding a WorkGrinder from plain threads with `submit_from_thread()`.

The grinder lives on an event loop; other OS threads submit work with
`submit_from_thread()` and get a `concurrent.futures.Future` back.  (On the
loop's own thread, use `await grinder.submit()` instead: the thread-safe
call refuses to run there rather than deadlock.)
"""

from __future__ import annotations

import asyncio
import threading

from neoleasepool import LeasedExecutorManager, WorkGrinder


def add(left: int, right: int) -> int:
    return left + right


def producer(grinder: WorkGrinder, base: int, out: list[int]) -> None:
    futures = [grinder.submit_from_thread(add, base, i) for i in range(25)]
    out.extend(f.result(timeout=10) for f in futures)


async def main() -> None:
    manager = LeasedExecutorManager(backend="thread", max_pools=2, workers_per_pool=4)
    grinder = WorkGrinder(executor_manager=manager, batch_size_threshold=20, max_wait_seconds=0.05)
    await manager.start()
    await grinder.start()
    try:
        results: list[int] = []
        threads = [
            threading.Thread(target=producer, args=(grinder, 1000 * n, results)) for n in range(4)
        ]
        for thread in threads:
            thread.start()
        # Wait for the producers without blocking the loop the grinder runs on.
        await asyncio.gather(*(asyncio.to_thread(t.join) for t in threads))
        print(f"{len(results)} results from 4 threads, e.g. {sorted(results)[:3]}")
        try:
            grinder.submit_from_thread(add, 1, 2)
        except RuntimeError as exc:
            print("on the loop thread:", exc)
    finally:
        await grinder.stop()
        await manager.stop()


if __name__ == "__main__":
    asyncio.run(main())
