"""WorkGrinder with a user's own manager: all leasepool's grinder asks of it.

leasepool's grinder works with any manager whose ``await acquire(owner=...,
lease_seconds=...)`` returns a lease with an ``executor`` and an async
``release()``; users write such doubles in their tests. Expiry times,
``active``, a worker count and a backend name are used when present.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any

import pytest

from neoleasepool import ItemTimeoutError, WorkGrinder, time_limited
from tests.grinder_work import square
from tests.support import run


class PlainLease:
    """A lease with only what the contract requires."""

    def __init__(self, executor: concurrent.futures.Executor, log: list[str]) -> None:
        self.executor = executor
        self._log = log

    async def release(self) -> None:
        self._log.append("release")


class PlainManager:
    """A stand-in manager: one thread pool, leases without expiry or state."""

    def __init__(self, lease_factory: Any = PlainLease) -> None:
        self.pool = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="plain")
        self.log: list[str] = []
        self._lease_factory = lease_factory

    async def acquire(self, *, owner: str, lease_seconds: float) -> Any:
        self.log.append("acquire")
        return self._lease_factory(self.pool, self.log)


def test_a_manager_with_only_acquire_and_leases_with_only_executor_and_release() -> None:
    async def main() -> None:
        manager = PlainManager()
        grinder = WorkGrinder(
            executor_manager=manager, batch_size_threshold=5, max_wait_seconds=0.01
        )
        await grinder.start()
        try:
            results = await asyncio.wait_for(
                asyncio.gather(*(grinder.submit(square, n) for n in range(40))), 10
            )
            from_thread = await asyncio.to_thread(
                lambda: grinder.submit_from_thread(square, 7).result(10)
            )
        finally:
            await asyncio.wait_for(grinder.stop(), 10)
            manager.pool.shutdown(wait=True)
        assert results == [n * n for n in range(40)]
        assert from_thread == 49
        # Every lease it took went back, once.
        assert manager.log.count("acquire") == manager.log.count("release") > 0
        stats = grinder.stats()
        assert stats["items_completed"] == stats["items_submitted"] == 41
        assert stats["lane_runners"] == 0  # no backend named: plain calls, no hand-off

    run(main())


class NoExecutor:
    def __init__(self, executor: concurrent.futures.Executor, log: list[str]) -> None:
        self._log = log

    async def release(self) -> None:
        self._log.append("release")


def test_a_lease_without_an_executor_fails_its_items_instead_of_hanging() -> None:
    async def main() -> None:
        manager = PlainManager(NoExecutor)
        grinder = WorkGrinder(
            executor_manager=manager, batch_size_threshold=3, max_wait_seconds=0.01
        )
        await grinder.start()
        try:
            outcomes = await asyncio.wait_for(
                asyncio.gather(*(grinder.submit(square, n) for n in range(3)),
                               return_exceptions=True),
                10,
            )
        finally:
            await asyncio.wait_for(grinder.stop(), 10)
            manager.pool.shutdown(wait=True)
        assert all(isinstance(o, TypeError) for o in outcomes), outcomes
        assert "executor" in str(outcomes[0])
        assert grinder.stats()["items_failed"] == 3

    run(main())


@pytest.mark.parametrize("workers", [0, -1, "4", None])
def test_a_stand_in_manager_with_an_odd_worker_count_still_works(workers: Any) -> None:
    async def main() -> None:
        manager = PlainManager()
        manager.workers_per_pool = workers  # type: ignore[attr-defined]
        grinder = WorkGrinder(executor_manager=manager, max_wait_seconds=0.01)
        await grinder.start()
        try:
            assert await asyncio.wait_for(grinder.submit(square, 3), 10) == 9
        finally:
            await asyncio.wait_for(grinder.stop(), 10)
            manager.pool.shutdown(wait=True)

    run(main())


class ProcessNamedManager(PlainManager):
    """A stand-in that names the process backend but lends a thread pool,
    which cannot enforce time limits."""

    backend = "process"


def test_a_timed_item_on_a_stand_in_of_a_stopping_backend_gets_the_grinders_timer() -> None:
    release = threading.Event()

    async def main() -> None:
        manager = ProcessNamedManager()
        grinder = WorkGrinder(
            executor_manager=manager, batch_size_threshold=1, max_wait_seconds=0.01
        )
        await grinder.start()
        try:
            with pytest.raises(ItemTimeoutError, match="cannot stop a running call"):
                await asyncio.wait_for(grinder.submit(time_limited(release.wait, 0.2), 30), 10)
            assert grinder.stats()["items_timed_out"] == 1
        finally:
            release.set()
            await asyncio.wait_for(grinder.stop(), 10)
            manager.pool.shutdown(wait=True)

    run(main())
