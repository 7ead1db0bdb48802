"""Lease expiry: soft expiry, hard expiry, revocation and replacement.

Short real durations (a fifth of a second) and generous bounds: a test
waits for the revocation with a deadline of many seconds, while
``check_interval`` is left at 120 s so that only the checker's wake-up for
the next expiry can explain a prompt revocation.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from concurrent.futures.process import BrokenProcessPool

import pytest

from neoleasepool import LeaseExpiredError, LeaseState
from tests.support import await_until, make_manager, run, serving
from tests.workfns import getpid, sleep_then, square, thread_name

BACKENDS = ["thread", "process"]

#: Far longer than any revocation should take, far shorter than check_interval.
DEADLINE = 15.0


make = functools.partial(make_manager, check_interval=120.0)


async def let_checker_sleep() -> None:
    """Let the checker task run its first pass and go to sleep."""
    for _ in range(3):
        await asyncio.sleep(0)


def test_lease_stays_usable_between_soft_and_hard_expiry() -> None:
    async def main() -> None:
        manager = make(lease_grace_seconds=60.0)
        async with serving(manager):
            lease = await manager.acquire(lease_seconds=0.05)
            await await_until(lambda: time.monotonic() > lease.soft_expires_at)
            (entry,) = manager.stats()["leases"]
            assert entry["seconds_until_soft_expiry"] == 0.0
            assert entry["seconds_until_hard_expiry"] > 30.0
            assert lease.active
            assert await lease.run(square, 4) == 16
            await lease.release()
            assert manager.stats()["leases_revoked"] == 0

    run(main())


@pytest.mark.parametrize("backend", BACKENDS)
def test_lease_is_revoked_after_hard_expiry_and_its_pool_replaced(backend: str) -> None:
    async def main() -> None:
        manager = make(backend=backend, min_pools=1, lease_grace_seconds=0.1)
        async with serving(manager):
            identify = getpid if backend == "process" else thread_name
            async with await manager.acquire() as warm_up:  # start the workers
                old_worker = await warm_up.run(identify)
            await let_checker_sleep()
            lease = await manager.acquire(lease_seconds=0.2, owner="slowpoke")
            started = time.monotonic()
            await await_until(lambda: lease.state is LeaseState.DONE, timeout=DEADLINE)
            assert time.monotonic() - started < DEADLINE
            assert not lease.active
            with pytest.raises(LeaseExpiredError):
                lease.executor.submit(square, 1)
            with pytest.raises(LeaseExpiredError):
                await lease.run(square, 1)
            await lease.release()  # a no-op now
            stats = manager.stats()
            assert stats["leases_revoked"] == 1
            assert stats["leases_released"] == 1  # the warm-up lease
            assert stats["leases"] == []
            # Replaced up to the target with a fresh pool.
            assert manager.total_count == 1
            assert stats["pools_created"] == 2
            async with await manager.acquire() as fresh:
                assert await fresh.run(identify) != old_worker

    run(main())


def test_submit_is_refused_once_past_hard_expiry_even_before_the_checker_runs() -> None:
    async def main() -> None:
        manager = make(lease_grace_seconds=0.0)
        async with serving(manager):
            lease = await manager.acquire(lease_seconds=0.05)
            # No await between here and submit: the checker cannot have run.
            while time.monotonic() < lease.hard_expires_at:
                time.sleep(0.01)
            with pytest.raises(LeaseExpiredError, match="hard expiry"):
                lease.executor.submit(square, 1)

    run(main())


def test_zero_grace_revokes_at_soft_expiry() -> None:
    async def main() -> None:
        manager = make(lease_grace_seconds=0.0)
        async with serving(manager):
            lease = await manager.acquire(lease_seconds=0.2)
            assert lease.hard_expires_at == lease.soft_expires_at
            await await_until(lambda: lease.state is LeaseState.DONE, timeout=DEADLINE)
            assert manager.stats()["leases_revoked"] == 1

    run(main())


def test_checker_wakes_for_a_shorter_lease_granted_later() -> None:
    async def main() -> None:
        manager = make(max_pools=2, lease_grace_seconds=0.1)
        async with serving(manager):
            long = await manager.acquire(lease_seconds=100.0)
            await let_checker_sleep()  # now asleep until the long lease's expiry
            short = await manager.acquire(lease_seconds=0.2)
            await await_until(lambda: short.state is LeaseState.DONE, timeout=DEADLINE)
            assert long.active
            assert await long.run(square, 3) == 9
            assert manager.stats()["leases_revoked"] == 1
            await long.release()

    run(main())


def test_revocation_frees_capacity_for_a_waiter() -> None:
    async def main() -> None:
        manager = make(max_pools=1, lease_grace_seconds=0.1)
        async with serving(manager):
            expiring = await manager.acquire(lease_seconds=0.2)
            nxt = await manager.acquire(timeout=DEADLINE, owner="patient")
            assert expiring.state is LeaseState.DONE
            assert nxt.owner == "patient"
            assert await nxt.run(square, 2) == 4
            await nxt.release()

    run(main())


def test_revocation_shuts_the_pool_down_while_the_new_one_works() -> None:
    async def main() -> None:
        manager = make(max_pools=1, lease_grace_seconds=0.1, name_prefix="revoked")
        async with serving(manager):
            started = threading.Event()
            gate = threading.Event()

            def stuck() -> str:
                started.set()
                gate.wait(30)
                return "late"

            try:
                lease = await manager.acquire(lease_seconds=1.0)
                future = lease.executor.submit(stuck)
                assert await asyncio.to_thread(started.wait, 10)
                await await_until(lambda: lease.state is LeaseState.DONE, timeout=DEADLINE)
                # Threads cannot be killed: the stuck call keeps its thread, but the
                # replacement pool serves new leases meanwhile.
                async with await manager.acquire(timeout=DEADLINE) as fresh:
                    assert await fresh.run(square, 5) == 25
                assert manager.stats()["retiring"] == 1
                gate.set()
                assert await asyncio.wrap_future(future) == "late"
                await await_until(lambda: manager.stats()["retiring"] == 0)
            finally:
                gate.set()

    run(main())


def test_revocation_kills_running_process_work() -> None:
    async def main() -> None:
        manager = make(backend="process", max_pools=1, lease_grace_seconds=0.1)
        async with serving(manager):
            async with await manager.acquire() as warm_up:  # start the worker
                await warm_up.run(getpid)
            lease = await manager.acquire(lease_seconds=1.0)
            began = time.monotonic()
            with pytest.raises(BrokenProcessPool):
                await lease.run(sleep_then, 60.0, "never")
            assert time.monotonic() - began < 30.0
            assert lease.state is LeaseState.DONE
            async with await manager.acquire(timeout=DEADLINE) as fresh:
                assert await fresh.run(square, 6) == 36

    run(main(), timeout=45)


def test_draining_lease_is_revoked_at_hard_expiry() -> None:
    async def main() -> None:
        manager = make(max_pools=1, lease_grace_seconds=0.1)
        async with serving(manager):
            gate = threading.Event()
            try:
                lease = await manager.acquire(lease_seconds=1.0)
                future = lease.executor.submit(gate.wait, 30)
                await lease.release()
                assert lease.state is LeaseState.DRAINING
                await await_until(lambda: lease.state is LeaseState.DONE, timeout=DEADLINE)
                stats = manager.stats()
                assert stats["leases_revoked"] == 1
                assert stats["leases_released"] == 0
                async with await manager.acquire(timeout=DEADLINE) as fresh:
                    assert await fresh.run(square, 7) == 49
                gate.set()
                assert await asyncio.wrap_future(future) is True
            finally:
                gate.set()

    run(main())


def test_bounded_stop_does_not_wait_for_a_revoked_pool_stuck_in_a_call() -> None:
    async def main() -> None:
        manager = make(max_pools=1, lease_grace_seconds=0.1)
        async with serving(manager):
            started = threading.Event()
            gate = threading.Event()

            def stuck() -> None:
                started.set()
                gate.wait(30)

            try:
                lease = await manager.acquire(lease_seconds=1.0)
                future = lease.executor.submit(stuck)
                assert await asyncio.to_thread(started.wait, 10)
                await await_until(lambda: lease.state is LeaseState.DONE, timeout=DEADLINE)
                began = time.monotonic()
                await manager.stop(timeout=0.5)
                assert time.monotonic() - began < 10.0
                assert not future.done()
            finally:
                gate.set()

    run(main())
