"""A script written for leasepool 0.1.x, running on neoleasepool: only the import changed.

Everything below the imports is leasepool's public API as its README uses
it: a lease manager, leases as context managers, the errors its users
catch (matched on leasepool's own words), a work grinder fed from the
event loop and from a plain thread, and ``stats()``.  The two lines that
import from ``neoleasepool`` were ``from leasepool ...``;
``tests/test_leasepool_compat.py`` checks that nothing else here names
neoleasepool, and runs the file with the imports switched back when
leasepool is installed, expecting the same output.

Run from the repository root::

    python examples/51_from_leasepool.py
"""

import asyncio
import json
import threading

from neoleasepool import (
    ExecutorBackend,
    LeasedExecutorManager,
    LeaseExpiredError,
    LeaseUnavailableError,
    WorkGrinder,
)
from neoleasepool.backends import normalize_backend


def square(value):
    return value * value


def checked(label, error, words):
    assert words in str(error), str(error)
    print(f"{label}: {words}")


async def leases(manager):
    async with await manager.acquire(owner="report") as lease:
        print("run:", await lease.run(square, 7))
        print("submit:", lease.executor.submit(square, 8).result(timeout=10))
        try:
            await manager.acquire(wait=False)
        except LeaseUnavailableError as error:
            checked("all leased", error, "No executor available")
        try:
            await manager.acquire(timeout=0.05)
        except TimeoutError as error:
            checked("waited", error, "Timed out waiting")
        try:
            lease.executor.shutdown()
        except RuntimeError as error:
            checked("shutdown", error, "Do not shut down")
    try:
        lease.executor.submit(square, 9)
    except LeaseExpiredError as error:
        checked("after release", error, "no longer active")


async def grinding(manager):
    grinder = WorkGrinder(executor_manager=manager, max_wait_seconds=0.05, batch_size_threshold=4)
    await grinder.start()
    try:
        results = await asyncio.gather(*(grinder.submit(square, n) for n in range(6)))
        print("grinder:", results)
        future = await grinder.enqueue(square, 10)
        print("enqueue:", await future)
        from_thread = []
        worker = threading.Thread(
            target=lambda: from_thread.append(
                grinder.submit_from_thread(square, 11).result(timeout=10)
            )
        )
        worker.start()
        await asyncio.to_thread(worker.join)
        print("from a thread:", from_thread)
        try:
            grinder.submit_from_thread(square, 12)
        except RuntimeError as error:
            checked("on the loop", error, "owning event-loop thread")
    finally:
        await grinder.stop()


async def main():
    mistakes = [{"max_pools": 0}, {"max_pools": 1, "min_pools": 2}]
    mistakes.append({"max_pools": 1, "backend": "?"})
    for bad in mistakes:
        try:
            LeasedExecutorManager(**bad)
        except ValueError as error:
            print("refused:", str(error).split(":")[0].split(".")[0])
    manager = LeasedExecutorManager(
        backend="THREAD", max_pools=1, min_pools=1, workers_per_pool=2, check_interval="2.5"
    )
    print("backend:", manager.backend is ExecutorBackend.THREAD, manager.backend == "thread")
    print("normalized:", normalize_backend("Process") is ExecutorBackend.PROCESS)
    await manager.start()
    try:
        await leases(manager)
        await grinding(manager)
        stats = json.loads(json.dumps(manager.stats()))
        print("stats:", stats["backend"], stats["max_pools"], stats["min_pools"])
    finally:
        await manager.stop()
    print("stopped:", manager.total_count)


if __name__ == "__main__":
    asyncio.run(main())
