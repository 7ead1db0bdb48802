"""LeasedExecutorManager: lifecycle, acquiring and releasing, waiting,
loop ownership, counts and diagnostics."""

from __future__ import annotations

import asyncio
import functools
import json
import threading

import pytest

from neoleasepool import (
    ExecutorLease,
    LeasePoolError,
    LeasePoolNotStartedError,
    LeaseUnavailableError,
    WrongLoopError,
)
from tests.support import await_until, error_in_other_loop, make_manager, run, serving
from tests.workfns import square, thread_name

BACKENDS = ["thread", "process"]


make = functools.partial(make_manager, max_pools=2)


# ------------------------------------------------------------------ lifecycle


@pytest.mark.parametrize("backend", BACKENDS)
def test_start_creates_min_pools_and_stop_releases_everything(backend: str) -> None:
    async def main() -> None:
        manager = make(backend=backend, max_pools=3, min_pools=2)
        assert not manager.started
        assert manager.total_count == 0
        async with serving(manager):
            assert manager.started
            assert manager.loop is asyncio.get_running_loop()
            assert manager.backend == backend
            assert manager.total_count == 2
            assert manager.available_count == 2
            assert manager.leased_count == 0
            lease = await manager.acquire()
            assert await lease.run(square, 7) == 49
            await lease.release()
        assert not manager.started
        assert manager.loop is None
        assert manager.total_count == 0
        assert manager.stats()["state"] == "stopped"

    run(main())


def test_start_twice_is_a_no_op() -> None:
    async def main() -> None:
        manager = make(min_pools=1)
        async with serving(manager):
            await manager.start()
            assert manager.total_count == 1
            assert manager.stats()["pools_created"] == 1

    run(main())


def test_stop_before_start_and_twice_is_a_no_op() -> None:
    async def main() -> None:
        manager = make()
        await manager.stop()
        await manager.start()
        await manager.stop()
        await manager.stop()
        assert manager.stats()["state"] == "stopped"

    run(main())


def test_concurrent_stops_both_wait_for_the_stop() -> None:
    async def main() -> None:
        manager = make()
        await manager.start()
        lease = await manager.acquire()
        gate = threading.Event()
        future = lease.executor.submit(gate.wait, 30)
        first = asyncio.ensure_future(manager.stop())
        second = asyncio.ensure_future(manager.stop())
        await await_until(lambda: manager.stats()["state"] == "stopping")
        await asyncio.sleep(0)
        assert not first.done() and not second.done()  # draining the gated call
        gate.set()
        await asyncio.gather(first, second)
        assert future.result() is True
        assert manager.stats()["state"] == "stopped"

    run(main())


def test_manager_restarts_after_stop_on_a_new_loop() -> None:
    manager = make(min_pools=1)

    async def use() -> int:
        async with serving(manager), await manager.acquire() as lease:
            return await lease.run(square, 3)

    assert run(use()) == 9
    assert run(use()) == 9
    assert manager.stats()["leases_granted"] == 2


def test_acquire_before_start_raises_not_started() -> None:
    async def main() -> None:
        manager = make()
        with pytest.raises(LeasePoolNotStartedError, match="start"):
            await manager.acquire()

    run(main())


def test_acquire_after_stop_raises() -> None:
    async def main() -> None:
        manager = make()
        await manager.start()
        await manager.stop()
        with pytest.raises(LeasePoolNotStartedError):
            await manager.acquire()

    run(main())


def test_not_started_error_is_a_runtime_error() -> None:
    assert issubclass(LeasePoolNotStartedError, RuntimeError)
    assert issubclass(LeasePoolNotStartedError, LeasePoolError)


# ------------------------------------------------------- acquire and release


def test_acquire_takes_an_idle_pool_and_release_returns_it() -> None:
    async def main() -> None:
        manager = make(max_pools=2, min_pools=1)
        async with serving(manager):
            lease = await manager.acquire(owner="job-1")
            assert isinstance(lease, ExecutorLease)
            assert lease.owner == "job-1"
            assert manager.available_count == 0
            assert manager.leased_count == 1
            assert manager.total_count == 1
            first_thread = await lease.run(thread_name)
            await lease.release()
            assert manager.available_count == 1
            assert manager.leased_count == 0
            again = await manager.acquire()
            try:
                assert await again.run(thread_name) == first_thread  # same pool reused
            finally:
                await again.release()
            stats = manager.stats()
            assert stats["leases_granted"] == 2
            assert stats["leases_released"] == 2
            assert stats["pools_created"] == 1

    run(main())


def test_acquire_creates_pools_on_demand_up_to_max_pools() -> None:
    async def main() -> None:
        manager = make(max_pools=3, min_pools=1)
        async with serving(manager):
            leases = [await manager.acquire() for _ in range(3)]
            assert manager.total_count == 3
            assert manager.leased_count == 3
            names = {await lease.run(thread_name) for lease in leases}
            assert len(names) == 3  # three distinct pools
            with pytest.raises(LeaseUnavailableError, match="max_pools=3"):
                await manager.acquire(wait=False)
            for lease in leases:
                await lease.release()
            # Pools above the target (min_pools=1) are shut down on release.
            assert manager.total_count == 1

    run(main())


def test_acquire_waits_for_a_release() -> None:
    async def main() -> None:
        manager = make(max_pools=1)
        async with serving(manager):
            held = await manager.acquire()
            waiting = asyncio.ensure_future(manager.acquire(owner="second"))
            await await_until(lambda: manager.stats()["waiting"] == 1)
            assert not waiting.done()
            await held.release()
            lease = await asyncio.wait_for(waiting, 10)
            assert lease.owner == "second"
            assert manager.stats()["waiting"] == 0
            assert await lease.run(square, 5) == 25
            await lease.release()

    run(main())


def test_waiters_are_served_in_arrival_order() -> None:
    async def main() -> None:
        manager = make(max_pools=1)
        async with serving(manager):
            held = await manager.acquire()
            order: list[str] = []

            async def take(name: str) -> None:
                lease = await manager.acquire(owner=name)
                order.append(name)
                await lease.release()

            tasks = []
            for count, name in enumerate(("a", "b", "c"), 1):
                tasks.append(asyncio.ensure_future(take(name)))
                await await_until(
                    lambda count=count: manager.stats()["waiting"] == count
                )
            await held.release()
            await asyncio.wait_for(asyncio.gather(*tasks), 10)
            assert order == ["a", "b", "c"]

    run(main())


def test_acquire_timeout_raises_builtin_timeout_error_and_forgets_the_waiter() -> None:
    async def main() -> None:
        manager = make(max_pools=1)
        async with serving(manager):
            held = await manager.acquire()
            with pytest.raises(TimeoutError):
                await manager.acquire(timeout=0.05)
            assert manager.stats()["waiting"] == 0
            await held.release()
            lease = await manager.acquire(timeout=0)
            await lease.release()

    run(main())


def test_cancelled_acquire_is_forgotten_and_loses_no_pool() -> None:
    async def main() -> None:
        manager = make(max_pools=1)
        async with serving(manager):
            held = await manager.acquire()
            waiting = asyncio.ensure_future(manager.acquire())
            await await_until(lambda: manager.stats()["waiting"] == 1)
            waiting.cancel()
            await asyncio.gather(waiting, return_exceptions=True)
            assert manager.stats()["waiting"] == 0
            assert "waiting=0" in repr(manager)
            await held.release()
            assert manager.available_count == 1

    run(main())


def test_acquire_cancelled_after_a_pool_was_handed_over_gives_it_back() -> None:
    async def main() -> None:
        manager = make(max_pools=1)
        async with serving(manager):
            held = await manager.acquire()
            waiting = asyncio.ensure_future(manager.acquire())
            await await_until(lambda: manager.stats()["waiting"] == 1)
            await held.release()  # hands the pool to the waiter...
            waiting.cancel()  # ...which is cancelled before it resumes
            await asyncio.gather(waiting, return_exceptions=True)
            assert waiting.cancelled()
            assert manager.total_count == 1
            assert manager.available_count == 1
            lease = await manager.acquire(wait=False)
            await lease.release()

    run(main())


def test_pool_handed_to_a_waiter_counts_against_max_pools() -> None:
    async def main() -> None:
        manager = make(max_pools=1)
        async with serving(manager):
            held = await manager.acquire()
            waiting = asyncio.ensure_future(manager.acquire())
            await await_until(lambda: manager.stats()["waiting"] == 1)
            await held.release()  # the pool is on its way to the waiter
            assert manager.total_count == 1
            with pytest.raises(LeaseUnavailableError):
                await manager.acquire(wait=False)
            lease = await asyncio.wait_for(waiting, 10)
            assert manager.total_count == 1
            assert manager.stats()["pools_created"] == 1
            await lease.release()

    run(main())


def test_release_by_lease_id_and_unknown_ids_are_ignored() -> None:
    async def main() -> None:
        manager = make()
        async with serving(manager):
            lease = await manager.acquire()
            await manager.release(lease.lease_id)
            assert manager.leased_count == 0
            assert not lease.active
            await manager.release(lease.lease_id)
            await manager.release("no-such-lease")
            assert manager.stats()["leases_released"] == 1

    run(main())


def test_lease_ids_are_unique() -> None:
    async def main() -> None:
        manager = make(max_pools=1)
        async with serving(manager):
            ids = set()
            for _ in range(20):
                lease = await manager.acquire()
                ids.add(lease.lease_id)
                await lease.release()
            assert len(ids) == 20

    run(main())


def test_lease_seconds_default_and_override() -> None:
    async def main() -> None:
        manager = make(default_lease_seconds=42.0, lease_grace_seconds=3.0)
        async with serving(manager):
            default = await manager.acquire()
            custom = await manager.acquire(lease_seconds=7.5)
            assert default.lease_seconds == 42.0
            assert custom.lease_seconds == 7.5
            assert custom.grace_seconds == 3.0
            assert custom.soft_expires_at == pytest.approx(custom.leased_at + 7.5)
            assert custom.hard_expires_at == pytest.approx(custom.leased_at + 10.5)
            await default.release()
            await custom.release()

    run(main())


# ------------------------------------------------------------------ stopping


def test_stop_wakes_every_waiter_with_not_started_error() -> None:
    async def main() -> None:
        manager = make(max_pools=1)
        await manager.start()
        await manager.acquire()
        waiters = [asyncio.ensure_future(manager.acquire()) for _ in range(3)]
        await await_until(lambda: manager.stats()["waiting"] == 3)
        await manager.stop()
        results = await asyncio.wait_for(
            asyncio.gather(*waiters, return_exceptions=True), 10
        )
        assert all(isinstance(r, LeasePoolNotStartedError) for r in results), results

    run(main())


def test_acquire_raises_while_the_manager_is_stopping() -> None:
    async def main() -> None:
        manager = make(max_pools=2)
        await manager.start()
        lease = await manager.acquire()
        gate = threading.Event()
        future = lease.executor.submit(gate.wait, 30)
        stopping = asyncio.ensure_future(manager.stop())
        try:
            await await_until(lambda: manager.stats()["state"] == "stopping")
            with pytest.raises(LeasePoolNotStartedError):
                await manager.acquire(wait=False)
            with pytest.raises(LeasePoolNotStartedError):
                await manager.acquire()
            assert not manager.started
        finally:
            gate.set()
            await stopping
        assert future.result() is True

    run(main())


def test_pool_handed_over_as_stop_begins_is_not_leased() -> None:
    async def main() -> None:
        manager = make(max_pools=1)
        await manager.start()
        held = await manager.acquire()
        waiting = asyncio.ensure_future(manager.acquire())
        await await_until(lambda: manager.stats()["waiting"] == 1)
        # The stop task runs before the waiter resumes with its pool.
        stopping = asyncio.ensure_future(manager.stop())
        await held.release()
        with pytest.raises(LeasePoolNotStartedError):
            await asyncio.wait_for(waiting, 10)
        await stopping
        assert manager.stats()["leases_granted"] == 1
        assert manager.total_count == 0

    run(main())


def test_stop_drains_running_work_by_default() -> None:
    async def main() -> None:
        manager = make()
        await manager.start()
        lease = await manager.acquire()
        started = threading.Event()
        gate = threading.Event()

        def gated() -> str:
            started.set()
            gate.wait(30)
            return "done"

        future = lease.executor.submit(gated)
        await asyncio.to_thread(started.wait, 10)
        stopping = asyncio.ensure_future(manager.stop())
        await await_until(lambda: manager.stats()["state"] == "stopping")
        assert not future.done()
        gate.set()
        await stopping
        assert future.result() == "done"
        assert not lease.active

    run(main())


def test_stop_without_drain_cancels_queued_work() -> None:
    async def main() -> None:
        manager = make(workers_per_pool=1)
        await manager.start()
        lease = await manager.acquire()
        started = threading.Event()
        gate = threading.Event()

        def gated() -> None:
            started.set()
            gate.wait(30)

        running = lease.executor.submit(gated)
        queued = lease.executor.submit(square, 2)
        await asyncio.to_thread(started.wait, 10)
        stopping = asyncio.ensure_future(manager.stop(drain=False))
        await await_until(lambda: queued.done())
        assert queued.cancelled()
        gate.set()
        await stopping
        assert running.done() and not running.cancelled()

    run(main())


# ------------------------------------------------------------ loop ownership


def test_acquire_from_another_loop_raises_wrong_loop_error() -> None:
    async def main() -> None:
        manager = make()
        async with serving(manager):
            error = await asyncio.to_thread(error_in_other_loop, manager.acquire)
            assert isinstance(error, WrongLoopError)
            assert isinstance(error, RuntimeError)
            assert "acquire()" in str(error)
            assert "run_coroutine_threadsafe" in str(error)
            assert manager.leased_count == 0

    run(main())


def test_acquire_through_run_coroutine_threadsafe_works() -> None:
    async def main() -> None:
        manager = make()
        async with serving(manager):
            loop = asyncio.get_running_loop()

            async def use() -> int:
                async with await manager.acquire() as lease:
                    return await lease.run(square, 6)

            def other_thread() -> int:
                return asyncio.run_coroutine_threadsafe(use(), loop).result(10)

            assert await asyncio.to_thread(other_thread) == 36

    run(main())


def test_start_on_a_second_loop_while_running_raises() -> None:
    async def main() -> None:
        manager = make()
        async with serving(manager):
            error = await asyncio.to_thread(error_in_other_loop, manager.start)
            assert isinstance(error, WrongLoopError)
            assert manager.loop is asyncio.get_running_loop()

    run(main())


# ---------------------------------------------------------- stats and repr


def test_stats_is_a_json_serialisable_snapshot_with_lease_details() -> None:
    async def main() -> None:
        manager = make(
            max_pools=3,
            min_pools=2,
            workers_per_pool=2,
            default_lease_seconds=100.0,
            lease_grace_seconds=10.0,
        )
        async with serving(manager):
            lease = await manager.acquire(owner="request:123")
            stats = manager.stats()
            json.dumps(stats)
            for key in (
                "backend",
                "desired",
                "min_pools",
                "max_pools",
                "available",
                "leased",
                "total",
                "workers_per_pool",
                "leases",
            ):
                assert key in stats, key
            assert stats["backend"] == "thread"
            assert stats["desired"] == 2
            assert (stats["min_pools"], stats["max_pools"]) == (2, 3)
            assert (stats["available"], stats["leased"], stats["total"]) == (1, 1, 2)
            assert stats["workers_per_pool"] == 2
            (entry,) = stats["leases"]
            assert entry["lease_id"] == lease.lease_id
            assert entry["owner"] == "request:123"
            assert 90.0 < entry["seconds_until_soft_expiry"] <= 100.0
            assert 100.0 < entry["seconds_until_hard_expiry"] <= 110.0
            await lease.release()
            assert manager.stats()["leases"] == []

    run(main())


def test_repr_shows_backend_state_and_counts() -> None:
    async def main() -> None:
        manager = make(max_pools=2)
        assert "new" in repr(manager)
        async with serving(manager):
            lease = await manager.acquire()
            text = repr(manager)
            assert "thread" in text and "running" in text
            assert "leased=1" in text and "idle=0" in text and "max=2" in text
            assert lease.lease_id in repr(lease)
            assert "live" in repr(lease)
            await lease.release()
            assert "done" in repr(lease)
        assert "stopped" in repr(manager)

    run(main())
