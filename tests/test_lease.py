"""ExecutorLease: running work, releasing, the proxy executor, draining."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Executor

import pytest

from neoleasepool import (
    LeaseExpiredError,
    LeaseState,
    LeaseUnavailableError,
    WrongLoopError,
)
from tests.support import Gate, await_until, error_in_other_loop, run, serving
from tests.support import make_manager as make
from tests.workfns import sleep_then, square, thread_name

BACKENDS = ["thread", "process"]


def boom(message: str) -> None:
    raise KeyError(message)


# ---------------------------------------------------------------- running


@pytest.mark.parametrize("backend", BACKENDS)
def test_run_returns_the_result_or_raises_the_callables_error(backend: str) -> None:
    async def main() -> None:
        manager = make(backend=backend)
        async with serving(manager):
            lease = await manager.acquire()
            assert await lease.run(square, 12) == 144
            assert await lease.run(pow, 2, exp=10) == 1024
            with pytest.raises(KeyError, match="nope"):
                await lease.run(boom, "nope")
            # The callable's own exception does not harm the lease or pool.
            assert await lease.run(square, 3) == 9
            await lease.release()
            assert manager.stats()["pools_broken"] == 0

    run(main())


@pytest.mark.parametrize("backend", BACKENDS)
def test_executor_proxy_submits_to_the_leased_pool(backend: str) -> None:
    async def main() -> None:
        manager = make(backend=backend)
        async with serving(manager), await manager.acquire() as lease:
            executor = lease.executor
            assert isinstance(executor, Executor)
            future = executor.submit(square, 4)
            assert await asyncio.wrap_future(future) == 16
            mapped = await asyncio.to_thread(
                lambda: list(executor.map(square, [1, 2, 3]))
            )
            assert mapped == [1, 4, 9]

    run(main())


def test_executor_proxy_accepts_work_from_other_threads() -> None:
    async def main() -> None:
        manager = make()
        async with serving(manager), await manager.acquire() as lease:
            executor = lease.executor

            def from_thread() -> int:
                return executor.submit(square, 9).result(10)

            assert await asyncio.to_thread(from_thread) == 81

    run(main())


def test_run_uses_the_leased_pool_only() -> None:
    async def main() -> None:
        manager = make(max_pools=2, min_pools=2, name_prefix="mypool")
        async with serving(manager):
            first = await manager.acquire()
            second = await manager.acquire()
            a = {await first.run(thread_name) for _ in range(5)}
            b = {await second.run(thread_name) for _ in range(5)}
            assert len(a) == 1 and len(b) == 1 and a != b
            assert all(name.startswith("mypool-") for name in a | b)
            await first.release()
            await second.release()

    run(main())


def test_cancelling_run_cancels_a_call_that_has_not_started() -> None:
    async def main() -> None:
        manager = make(workers_per_pool=1)
        async with serving(manager):
            lease = await manager.acquire()
            gate = Gate("done")
            blocker = asyncio.ensure_future(lease.run(gate))
            await gate.wait_started()
            called = threading.Event()
            queued = asyncio.ensure_future(lease.run(called.set))
            await asyncio.sleep(0)
            queued.cancel()
            with pytest.raises(asyncio.CancelledError):
                await queued
            gate.opened.set()
            assert await blocker == "done"
            assert await lease.run(square, 2) == 4  # the pool's worker is free again
            assert not called.is_set()
            await lease.release()

    run(main())


def test_run_from_another_loop_raises_wrong_loop_error() -> None:
    async def main() -> None:
        manager = make()
        async with serving(manager):
            lease = await manager.acquire()
            error = await asyncio.to_thread(error_in_other_loop, lambda: lease.run(square, 1))
            assert isinstance(error, WrongLoopError)
            assert "ExecutorLease.run" in str(error)
            await lease.release()

    run(main())


# ---------------------------------------------------------------- release


def test_async_with_releases_the_lease_on_exit_and_on_error() -> None:
    async def main() -> None:
        manager = make()
        async with serving(manager):
            async with await manager.acquire() as lease:
                assert lease.active
                assert manager.leased_count == 1
            assert not lease.active
            assert manager.leased_count == 0
            with pytest.raises(ZeroDivisionError):
                async with await manager.acquire() as failing:
                    raise ZeroDivisionError
            assert not failing.active
            assert manager.available_count == 1

    run(main())


def test_release_is_idempotent() -> None:
    async def main() -> None:
        manager = make(max_pools=2)
        async with serving(manager):
            lease = await manager.acquire()
            other = await manager.acquire()
            await lease.release()
            await lease.release()
            await lease.release()
            assert lease.state is LeaseState.DONE
            assert other.active  # a repeated release never frees someone else's pool
            assert manager.leased_count == 1
            assert manager.stats()["leases_released"] == 1
            await other.release()

    run(main())


def test_release_after_the_manager_stopped_is_a_no_op() -> None:
    async def main() -> None:
        manager = make()
        await manager.start()
        lease = await manager.acquire()
        await manager.stop()
        await lease.release()
        assert not lease.active

    run(main())


def test_submit_and_run_after_release_raise_lease_expired_error() -> None:
    async def main() -> None:
        manager = make()
        async with serving(manager):
            lease = await manager.acquire()
            executor = lease.executor
            await lease.release()
            with pytest.raises(LeaseExpiredError, match="acquire a new lease"):
                executor.submit(square, 2)
            with pytest.raises(LeaseExpiredError):
                await lease.run(square, 2)
            # The pool went to the next holder, who can use it.
            async with await manager.acquire() as nxt:
                assert await nxt.run(square, 2) == 4
                with pytest.raises(LeaseExpiredError):
                    executor.submit(square, 2)

    run(main())


def test_run_after_the_manager_stopped_raises_lease_expired_error() -> None:
    async def main() -> None:
        manager = make()
        await manager.start()
        lease = await manager.acquire()
        await manager.stop()
        with pytest.raises(LeaseExpiredError):
            await lease.run(square, 2)
        with pytest.raises(LeaseExpiredError):
            lease.executor.submit(square, 2)

    run(main())


def test_proxy_refuses_shutdown_and_keeps_working() -> None:
    async def main() -> None:
        manager = make()
        async with serving(manager), await manager.acquire() as lease:
            with pytest.raises(RuntimeError, match="Return the lease with"):
                lease.executor.shutdown()
            with pytest.raises(RuntimeError):
                lease.executor.shutdown(wait=False, cancel_futures=True)
            # Executor.__exit__ calls shutdown()
            with pytest.raises(RuntimeError), lease.executor:
                pass
            assert await lease.run(square, 5) == 25

    run(main())


def test_lease_attributes() -> None:
    async def main() -> None:
        manager = make(default_lease_seconds=30.0, lease_grace_seconds=5.0)
        async with serving(manager):
            lease = await manager.acquire(owner="me", lease_seconds=20.0)
            assert lease.owner == "me"
            assert lease.lease_seconds == 20.0
            assert lease.grace_seconds == 5.0
            assert lease.soft_expires_at - lease.leased_at == pytest.approx(20.0)
            assert lease.hard_expires_at - lease.soft_expires_at == pytest.approx(5.0)
            assert isinstance(lease.lease_id, str) and lease.lease_id
            assert lease.state is LeaseState.LIVE
            await lease.release()
            anonymous = await manager.acquire()
            assert anonymous.owner is None
            assert anonymous.lease_seconds == 30.0
            assert anonymous.lease_id != lease.lease_id
            await anonymous.release()

    run(main())


# ---------------------------------------------------------------- draining


def test_release_waits_for_submitted_futures_before_reuse() -> None:
    async def main() -> None:
        manager = make(max_pools=1, workers_per_pool=2)
        async with serving(manager):
            try:
                lease = await manager.acquire()
                gates = [Gate("a"), Gate("b")]
                futures = [lease.executor.submit(g) for g in gates]
                for gate in gates:
                    await gate.wait_started()
                await lease.release()
                assert lease.state is LeaseState.DRAINING
                assert not lease.active
                with pytest.raises(LeaseExpiredError):
                    lease.executor.submit(square, 1)
                # The pool is still busy: not available to anyone.
                assert manager.leased_count == 1
                assert manager.available_count == 0
                with pytest.raises(LeaseUnavailableError):
                    await manager.acquire(wait=False)
                waiting = asyncio.ensure_future(manager.acquire())
                await await_until(lambda: manager.stats()["waiting"] == 1)

                gates[0].opened.set()
                assert await asyncio.wrap_future(futures[0]) == "a"
                await asyncio.sleep(0.05)  # give a wrong early hand-over a chance
                assert not waiting.done()
                assert lease.state is LeaseState.DRAINING

                gates[1].opened.set()
                nxt = await asyncio.wait_for(waiting, 10)
                assert futures[1].result() == "b"
                assert lease.state is LeaseState.DONE
                assert await nxt.run(square, 3) == 9
                await nxt.release()
            finally:
                for gate in gates:
                    gate.opened.set()

    run(main())


def test_draining_lease_shows_in_stats() -> None:
    async def main() -> None:
        manager = make()
        async with serving(manager):
            gate = Gate()
            try:
                lease = await manager.acquire(owner="drainer")
                future = lease.executor.submit(gate)
                await gate.wait_started()
                await lease.release()
                (entry,) = manager.stats()["leases"]
                assert entry["owner"] == "drainer"
                assert entry["state"] == "draining"
                assert entry["pending"] == 1
                gate.opened.set()
                await asyncio.wrap_future(future)
                await await_until(lambda: manager.available_count == 1)
                assert manager.stats()["leases"] == []
                assert manager.stats()["leases_released"] == 1
            finally:
                gate.opened.set()

    run(main())


def test_release_after_futures_finished_returns_the_pool_at_once() -> None:
    async def main() -> None:
        manager = make()
        async with serving(manager):
            lease = await manager.acquire()
            future = lease.executor.submit(square, 3)
            # Done, though its done-callbacks may not have run yet.
            await asyncio.to_thread(future.result, 10)
            await lease.release()
            assert lease.state is LeaseState.DONE
            assert manager.available_count == 1

    run(main())


def test_drained_surplus_pool_is_shut_down() -> None:
    async def main() -> None:
        manager = make(max_pools=2, min_pools=1, name_prefix="surplus")
        async with serving(manager):
            gate = Gate()
            try:
                keep = await manager.acquire()
                extra = await manager.acquire()  # a second pool, above the target of 1
                extra_thread = await extra.run(thread_name)
                future = extra.executor.submit(gate)
                await gate.wait_started()
                await extra.release()
                assert manager.total_count == 2
                gate.opened.set()
                await asyncio.wrap_future(future)
                await await_until(lambda: manager.total_count == 1)
                await await_until(
                    lambda: all(t.name != extra_thread for t in threading.enumerate())
                )
                assert manager.stats()["pools_retired"] == 1
                await keep.release()
            finally:
                gate.opened.set()

    run(main())


def test_release_drains_process_work_before_reuse() -> None:
    async def main() -> None:
        manager = make(backend="process", max_pools=1, workers_per_pool=1)
        async with serving(manager):
            lease = await manager.acquire()
            await lease.run(square, 1)  # the worker is up
            future = lease.executor.submit(sleep_then, 0.5, "slow")
            await lease.release()
            assert lease.state is LeaseState.DRAINING
            with pytest.raises(LeaseUnavailableError):
                await manager.acquire(wait=False)
            nxt = await manager.acquire(timeout=30)
            assert future.done() and future.result() == "slow"
            assert lease.state is LeaseState.DONE
            assert await nxt.run(square, 3) == 9
            await nxt.release()

    run(main())
