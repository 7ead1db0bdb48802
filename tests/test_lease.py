"""ExecutorLease: running work, releasing, the proxy executor, draining."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Executor
from typing import Any

import pytest

from neoleasepool import (
    LeasedExecutorManager,
    LeaseExpiredError,
    LeaseState,
    LeaseUnavailableError,
    WrongLoopError,
)
from tests.support import await_until, run
from tests.workfns import sleep_then, square, thread_name

BACKENDS = ["thread", "process"]


def make(**kwargs: Any) -> LeasedExecutorManager:
    kwargs.setdefault("max_pools", 1)
    kwargs.setdefault("workers_per_pool", 1)
    return LeasedExecutorManager(**kwargs)


def boom(message: str) -> None:
    raise KeyError(message)


class Gate:
    """A callable that signals when it starts and blocks until opened."""

    def __init__(self, value: object = "done") -> None:
        self.started = threading.Event()
        self.opened = threading.Event()
        self.value = value

    def __call__(self) -> object:
        self.started.set()
        if not self.opened.wait(30):
            raise AssertionError("gate never opened")
        return self.value

    async def wait_started(self) -> None:
        started = await asyncio.to_thread(self.started.wait, 10)
        assert started, "gated call never started"


# ---------------------------------------------------------------- running


@pytest.mark.parametrize("backend", BACKENDS)
def test_run_returns_the_result_or_raises_the_callables_error(backend: str) -> None:
    async def main() -> None:
        manager = make(backend=backend)
        await manager.start()
        try:
            lease = await manager.acquire()
            assert await lease.run(square, 12) == 144
            assert await lease.run(pow, 2, exp=10) == 1024
            with pytest.raises(KeyError, match="nope"):
                await lease.run(boom, "nope")
            # The callable's own exception does not harm the lease or pool.
            assert await lease.run(square, 3) == 9
            await lease.release()
            assert manager.stats()["pools_broken"] == 0
        finally:
            await manager.stop()

    run(main())


@pytest.mark.parametrize("backend", BACKENDS)
def test_executor_proxy_submits_to_the_leased_pool(backend: str) -> None:
    async def main() -> None:
        manager = make(backend=backend)
        await manager.start()
        try:
            async with await manager.acquire() as lease:
                executor = lease.executor
                assert isinstance(executor, Executor)
                future = executor.submit(square, 4)
                assert await asyncio.wrap_future(future) == 16
                mapped = await asyncio.to_thread(
                    lambda: list(executor.map(square, [1, 2, 3]))
                )
                assert mapped == [1, 4, 9]
        finally:
            await manager.stop()

    run(main())


def test_executor_proxy_accepts_work_from_other_threads() -> None:
    async def main() -> None:
        manager = make()
        await manager.start()
        try:
            async with await manager.acquire() as lease:
                executor = lease.executor

                def from_thread() -> int:
                    return executor.submit(square, 9).result(10)

                assert await asyncio.to_thread(from_thread) == 81
        finally:
            await manager.stop()

    run(main())


def test_run_uses_the_leased_pool_only() -> None:
    async def main() -> None:
        manager = make(max_pools=2, min_pools=2, name_prefix="mypool")
        await manager.start()
        try:
            first = await manager.acquire()
            second = await manager.acquire()
            a = {await first.run(thread_name) for _ in range(5)}
            b = {await second.run(thread_name) for _ in range(5)}
            assert len(a) == 1 and len(b) == 1 and a != b
            assert all(name.startswith("mypool-") for name in a | b)
            await first.release()
            await second.release()
        finally:
            await manager.stop()

    run(main())


def test_cancelling_run_cancels_a_call_that_has_not_started() -> None:
    async def main() -> None:
        manager = make(workers_per_pool=1)
        await manager.start()
        try:
            lease = await manager.acquire()
            gate = Gate()
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
        finally:
            await manager.stop()

    run(main())


def test_run_from_another_loop_raises_wrong_loop_error() -> None:
    async def main() -> None:
        manager = make()
        await manager.start()
        try:
            lease = await manager.acquire()
            errors: list[BaseException] = []

            def other_thread() -> None:
                try:
                    asyncio.run(lease.run(square, 1))
                except BaseException as exc:
                    errors.append(exc)

            thread = threading.Thread(target=other_thread)
            thread.start()
            await asyncio.to_thread(thread.join, 10)
            assert len(errors) == 1 and isinstance(errors[0], WrongLoopError)
            assert "ExecutorLease.run" in str(errors[0])
            await lease.release()
        finally:
            await manager.stop()

    run(main())


# ---------------------------------------------------------------- release


def test_async_with_releases_the_lease_on_exit_and_on_error() -> None:
    async def main() -> None:
        manager = make()
        await manager.start()
        try:
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
        finally:
            await manager.stop()

    run(main())


def test_release_is_idempotent() -> None:
    async def main() -> None:
        manager = make(max_pools=2)
        await manager.start()
        try:
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
        finally:
            await manager.stop()

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
        await manager.start()
        try:
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
        finally:
            await manager.stop()

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
        await manager.start()
        try:
            async with await manager.acquire() as lease:
                with pytest.raises(RuntimeError, match="release the lease"):
                    lease.executor.shutdown()
                with pytest.raises(RuntimeError):
                    lease.executor.shutdown(wait=False, cancel_futures=True)
                # Executor.__exit__ calls shutdown()
                with pytest.raises(RuntimeError), lease.executor:
                    pass
                assert await lease.run(square, 5) == 25
        finally:
            await manager.stop()

    run(main())


def test_lease_attributes() -> None:
    async def main() -> None:
        manager = make(default_lease_seconds=30.0, lease_grace_seconds=5.0)
        await manager.start()
        try:
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
        finally:
            await manager.stop()

    run(main())


# ---------------------------------------------------------------- draining


def test_release_waits_for_submitted_futures_before_reuse() -> None:
    async def main() -> None:
        manager = make(max_pools=1, workers_per_pool=2)
        await manager.start()
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
            await manager.stop()

    run(main())


def test_draining_lease_shows_in_stats() -> None:
    async def main() -> None:
        manager = make()
        await manager.start()
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
            await manager.stop()

    run(main())


def test_release_after_futures_finished_returns_the_pool_at_once() -> None:
    async def main() -> None:
        manager = make()
        await manager.start()
        try:
            lease = await manager.acquire()
            future = lease.executor.submit(square, 3)
            # Done, though its done-callbacks may not have run yet.
            await asyncio.to_thread(future.result, 10)
            await lease.release()
            assert lease.state is LeaseState.DONE
            assert manager.available_count == 1
        finally:
            await manager.stop()

    run(main())


def test_drained_surplus_pool_is_shut_down() -> None:
    async def main() -> None:
        manager = make(max_pools=2, min_pools=1, name_prefix="surplus")
        await manager.start()
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
            await manager.stop()

    run(main())


def test_release_drains_process_work_before_reuse() -> None:
    async def main() -> None:
        manager = make(backend="process", max_pools=1, workers_per_pool=1)
        await manager.start()
        try:
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
        finally:
            await manager.stop()

    run(main())
