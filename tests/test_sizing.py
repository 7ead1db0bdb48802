"""Adaptive sizing (seed 002): the rule, growing and shrinking with the
provider, and what shrinking never does."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from fractions import Fraction
from typing import Any

import pytest

from neoleasepool import LeasedExecutorManager
from neoleasepool.leasing.sizing import read_units, target_pools
from tests.support import await_until, run, serving
from tests.workfns import square, thread_name

LOG = logging.getLogger("tests.sizing")


@pytest.mark.parametrize(
    ("units", "expected"),
    [
        (0, 1),
        (1, 1),
        (10, 1),
        (11, 2),
        (20, 2),
        (21, 3),
        (31, 4),
        (40, 4),
        (41, 5),
        (1000, 5),  # capped by max_pools
        (10.5, 2),
        (math.inf, 5),
    ],
)
def test_target_is_ceil_of_units_per_pool_between_min_and_max(
    units: int | float, expected: int
) -> None:
    assert target_pools(units, min_pools=1, max_pools=5, units_per_pool=10) == expected


def test_min_pools_is_the_floor_of_the_target() -> None:
    assert target_pools(0, min_pools=3, max_pools=5, units_per_pool=10) == 3
    assert target_pools(25, min_pools=3, max_pools=5, units_per_pool=10) == 3
    assert target_pools(31, min_pools=3, max_pools=5, units_per_pool=10) == 4


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (7, 7),
        (-3, 0),
        (2.5, 2.5),
        (float("nan"), 0),
        (-0.5, 0),
        (True, 0),
        ("12", 0),
        (None, 0),
        (Fraction(5, 2), 2.5),
    ],
)
def test_read_units_turns_odd_provider_values_into_usable_counts(
    value: Any, expected: float
) -> None:
    assert read_units(lambda: value, LOG) == expected


def test_read_units_without_provider_is_zero() -> None:
    assert read_units(None, LOG) == 0


def test_raising_provider_counts_as_zero_and_is_logged_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken() -> int:
        raise OSError("device registry down")

    with caplog.at_level(logging.DEBUG, logger="tests.sizing"):
        assert read_units(broken, LOG) == 0
    (record,) = [r for r in caplog.records if r.name == "tests.sizing"]
    assert record.levelno == logging.DEBUG
    assert "size_provider" in record.getMessage()
    assert record.exc_info is not None


def test_desired_count_without_provider_is_min_pools() -> None:
    manager = LeasedExecutorManager(max_pools=5, min_pools=2)
    assert manager.desired_executor_count() == 2


def test_desired_count_follows_the_provider() -> None:
    units = [0]
    manager = LeasedExecutorManager(
        max_pools=5, min_pools=1, units_per_pool=10, size_provider=lambda: units[0]
    )
    assert manager.desired_executor_count() == 1
    units[0] = 31
    assert manager.desired_executor_count() == 4
    units[0] = 10_000
    assert manager.desired_executor_count() == 5


# ------------------------------------------------------------ live manager


def make(devices: set[str], **kwargs: Any) -> LeasedExecutorManager:
    kwargs.setdefault("max_pools", 5)
    kwargs.setdefault("min_pools", 1)
    kwargs.setdefault("units_per_pool", 10)
    kwargs.setdefault("workers_per_pool", 1)
    kwargs.setdefault("check_interval", 120.0)
    return LeasedExecutorManager(size_provider=lambda: len(devices), **kwargs)


def test_manager_grows_and_shrinks_on_notify_scale_changed() -> None:
    async def main() -> None:
        devices: set[str] = set()
        manager = make(devices)
        async with serving(manager):
            assert manager.total_count == 1
            devices.update(f"device-{i}" for i in range(31))
            manager.notify_scale_changed()
            await await_until(lambda: manager.total_count == 4)
            assert manager.available_count == 4
            assert manager.stats()["target"] == 4
            devices.clear()
            manager.notify_scale_changed()
            await await_until(lambda: manager.total_count == 1)
            assert manager.available_count == 1
            assert manager.stats()["pools_retired"] == 3

    run(main())


def test_manager_starts_with_the_provider_target() -> None:
    async def main() -> None:
        devices = {f"d{i}" for i in range(25)}
        manager = make(devices)
        async with serving(manager):
            assert manager.total_count == 3
            assert manager.available_count == 3

    run(main())


def test_notify_scale_changed_from_another_thread() -> None:
    async def main() -> None:
        devices: set[str] = set()
        manager = make(devices)
        async with serving(manager):

            def connect() -> None:
                devices.update(f"device-{i}" for i in range(50))
                manager.notify_scale_changed()

            thread = threading.Thread(target=connect)
            thread.start()
            await asyncio.to_thread(thread.join, 10)
            await await_until(lambda: manager.total_count == 5)

    run(main())


def test_checker_picks_up_provider_changes_every_check_interval() -> None:
    async def main() -> None:
        devices: set[str] = set()
        manager = make(devices, check_interval=0.1)
        async with serving(manager):
            devices.update(f"device-{i}" for i in range(15))  # no notify
            await await_until(lambda: manager.total_count == 2)

    run(main())


def test_notify_scale_changed_is_a_no_op_when_not_running() -> None:
    async def main() -> None:
        manager = make(set())
        manager.notify_scale_changed()
        await manager.start()
        await manager.stop()
        manager.notify_scale_changed()
        assert manager.total_count == 0

    run(main())


def test_raising_provider_keeps_the_manager_at_min_pools() -> None:
    async def main() -> None:
        state = {"fail": False, "units": 30}

        def provider() -> int:
            if state["fail"]:
                raise RuntimeError("signal unavailable")
            return state["units"]

        manager = LeasedExecutorManager(
            max_pools=5,
            min_pools=1,
            units_per_pool=10,
            size_provider=provider,
            workers_per_pool=1,
        )
        async with serving(manager):
            assert manager.total_count == 3
            state["fail"] = True
            manager.notify_scale_changed()
            await await_until(lambda: manager.total_count == 1)
            assert manager.desired_executor_count() == 1
            async with await manager.acquire() as lease:  # the manager still works
                assert await lease.run(square, 2) == 4
            state["fail"] = False
            manager.notify_scale_changed()
            await await_until(lambda: manager.total_count == 3)

    run(main())


def test_shrinking_never_revokes_live_leases() -> None:
    async def main() -> None:
        devices = {f"d{i}" for i in range(50)}
        manager = make(devices)
        async with serving(manager):
            assert manager.total_count == 5
            leases = [await manager.acquire() for _ in range(3)]
            devices.clear()
            manager.notify_scale_changed()
            await await_until(lambda: manager.available_count == 0)
            assert manager.leased_count == 3
            assert manager.total_count == 3
            assert manager.stats()["leases_revoked"] == 0
            for lease in leases:
                assert lease.active
                assert await lease.run(square, 3) == 9
            for lease in leases:
                await lease.release()
            # Released pools above the target (1) were shut down.
            assert manager.total_count == 1

    run(main())


def test_released_pool_above_target_is_shut_down() -> None:
    async def main() -> None:
        devices = {f"d{i}" for i in range(20)}
        manager = make(devices, name_prefix="shrink")
        async with serving(manager):
            first = await manager.acquire()
            second = await manager.acquire()
            first_thread = await first.run(thread_name)
            second_thread = await second.run(thread_name)
            devices.clear()
            manager.notify_scale_changed()
            await await_until(lambda: manager.stats()["target"] == 1)
            assert manager.total_count == 2  # both leased: nothing to shrink yet

            def alive(name: str) -> bool:
                return any(t.name == name for t in threading.enumerate())

            await first.release()  # the second lease covers the target
            assert manager.total_count == 1
            assert manager.available_count == 0
            await await_until(lambda: not alive(first_thread))
            await second.release()  # now needed to keep min_pools
            assert manager.total_count == 1
            assert manager.available_count == 1
            assert alive(second_thread)
            assert manager.stats()["pools_retired"] == 1

    run(main())


def test_waiters_beyond_target_still_get_pools_up_to_max() -> None:
    async def main() -> None:
        manager = make(set(), max_pools=3)
        async with serving(manager):
            leases = [await manager.acquire(wait=False) for _ in range(3)]
            assert manager.total_count == 3
            assert manager.stats()["target"] == 1
            for lease in leases:
                await lease.release()
            assert manager.total_count == 1

    run(main())


def test_surplus_pools_linger_for_surplus_idle_seconds_then_go() -> None:
    async def main() -> None:
        manager = LeasedExecutorManager(
            max_pools=3, min_pools=1, workers_per_pool=1, surplus_idle_seconds=0.3
        )
        await manager.start()
        try:
            leases = [await manager.acquire() for _ in range(3)]
            assert manager.stats()["pools_created"] == 3
            for lease in leases:
                await lease.release()
            released_at = time.monotonic()
            # above the target (1), yet kept idle for now...
            assert manager.total_count == 3
            # ...and reused without building new pools
            again = await manager.acquire()
            await again.release()
            assert manager.stats()["pools_created"] == 3
            await await_until(lambda: manager.total_count == 1, timeout=10)
            assert time.monotonic() - released_at >= 0.3
            assert manager.stats()["pools_retired"] == 2
        finally:
            await manager.stop()

    run(main())


def test_surplus_pools_go_at_once_by_default() -> None:
    async def main() -> None:
        manager = LeasedExecutorManager(max_pools=2, min_pools=1, workers_per_pool=1)
        await manager.start()
        try:
            first, second = await manager.acquire(), await manager.acquire()
            await first.release()
            await second.release()
            assert manager.total_count == 1
        finally:
            await manager.stop()

    run(main())
