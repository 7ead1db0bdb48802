"""Hostile input: every argument gets a clear error or a defined outcome,
and the system keeps working afterwards (a normal item runs after each).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import pytest

from neoleasepool import (
    BackgroundIntervalWorker,
    LeasedExecutorManager,
    TaskSupervisor,
    WorkGrinder,
)
from neoleasepool.loops.aloop import ALoop

from .chaos_work import compute, raise_base, unpicklable_result
from .figures import report
from .support import run

HOSTILE: list[Any] = [
    True, False, float("nan"), float("inf"), -float("inf"), "3", None, 0, -1, 2.5,
    Fraction(1, 3), 10**100, -(10**100),
]
COUNTS = ("max_pools", "min_pools", "units_per_pool", "workers_per_pool")
DURATIONS = (
    "check_interval", "default_lease_seconds", "lease_grace_seconds", "surplus_idle_seconds"
)
_figures = {"rejected": 0, "accepted": 0, "calls_after": 0}


@pytest.fixture(scope="module", autouse=True)
def _summary(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    report(request.config, "hostile-input", **_figures)


def _ok_count(value: Any, minimum: int = 1) -> bool:
    return (
        not isinstance(value, bool) and isinstance(value, int) and value >= minimum
    ) or (isinstance(value, float) and value.is_integer() and value >= minimum)


def _ok_duration(value: Any, zero: bool, text: bool = True) -> bool:
    """Whether ``value`` is a valid duration; ``text``: a numeric string is
    one, as for every argument leasepool also takes (``float()`` reads it)."""
    if isinstance(value, str) and text:
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float, Fraction)):
        return False
    as_float = float(value)
    return as_float == as_float and abs(as_float) != float("inf") and (
        as_float > 0 or (zero and as_float == 0)
    )


def _works(manager_kwargs: dict[str, Any]) -> None:
    async def scenario() -> int:
        manager = LeasedExecutorManager(**manager_kwargs)
        await manager.start()
        try:
            async with await manager.acquire() as lease:
                return await lease.run(compute, 5)
        finally:
            await manager.stop()

    assert run(scenario()) == compute(5)
    _figures["calls_after"] += 1


@pytest.mark.parametrize("name", COUNTS + DURATIONS)
@pytest.mark.parametrize("value", HOSTILE, ids=repr)
def test_manager_arguments(name: str, value: Any) -> None:
    kwargs: dict[str, Any] = {"max_pools": 2, name: value}
    if name == "max_pools" and _ok_count(value) and int(value) > 10:
        kwargs["max_pools"] = value  # huge but valid: only min_pools pools start
    allowed = (
        _ok_count(value) if name in COUNTS
        else _ok_duration(value, zero=name in ("lease_grace_seconds", "surplus_idle_seconds"))
    )
    if name in ("min_pools",) and allowed and int(value) > 2:
        allowed = False  # min_pools > max_pools
    if name == "workers_per_pool" and allowed and int(value) > 64:
        kwargs[name] = 2  # a valid but absurd worker count is not started here
    if not allowed:
        with pytest.raises(ValueError, match=name):
            LeasedExecutorManager(**kwargs)
        _figures["rejected"] += 1
    else:
        _figures["accepted"] += 1
    _works({"max_pools": 1})


@pytest.mark.parametrize("name", ["lease_seconds", "timeout"])
@pytest.mark.parametrize("value", HOSTILE, ids=repr)
def test_acquire_arguments(name: str, value: Any) -> None:
    allowed = value is None or _ok_duration(
        value, zero=name == "timeout", text=name == "lease_seconds"
    )
    if isinstance(value, (int, Fraction)) and not isinstance(value, bool) and value > 10**6:
        allowed = _ok_duration(value, zero=True)

    async def scenario() -> None:
        manager = LeasedExecutorManager(max_pools=1)
        await manager.start()
        try:
            if allowed:
                lease = await manager.acquire(**{name: value})
                await lease.release()
                _figures["accepted"] += 1
            else:
                with pytest.raises(ValueError, match=name):
                    await manager.acquire(**{name: value})
                _figures["rejected"] += 1
            async with await manager.acquire() as lease:
                assert await lease.run(compute, 1) == compute(1)
                _figures["calls_after"] += 1
        finally:
            await manager.stop()

    run(scenario())


@pytest.mark.parametrize(
    "name", ["max_wait_seconds", "batch_size_threshold", "lease_seconds", "chunk_size"]
)
@pytest.mark.parametrize("value", HOSTILE, ids=repr)
def test_grinder_arguments(name: str, value: Any) -> None:
    counts = name in ("batch_size_threshold", "chunk_size")
    allowed = _ok_count(value) if counts else _ok_duration(value, zero=False)
    if name == "chunk_size" and value is None:
        allowed = True

    async def scenario() -> None:
        manager = LeasedExecutorManager(max_pools=1)
        await manager.start()
        try:
            if not allowed:
                with pytest.raises(ValueError, match=name):
                    WorkGrinder(executor_manager=manager, **{name: value})
                _figures["rejected"] += 1
            else:
                _figures["accepted"] += 1
            grinder = WorkGrinder(executor_manager=manager, max_wait_seconds=0.01)
            await grinder.start()
            assert await grinder.submit(compute, 2) == compute(2)
            _figures["calls_after"] += 1
            await grinder.stop()
        finally:
            await manager.stop()

    run(scenario())


@pytest.fixture
def sup(request: pytest.FixtureRequest) -> Iterator[TaskSupervisor]:
    supervisor = TaskSupervisor(id=f"hostile-{request.node.name}")
    supervisor.start()
    try:
        yield supervisor
    finally:
        supervisor.stop(wait=30)


@pytest.mark.parametrize("value", [True, float("nan"), -1, "x", 0, 2.5, 10**100, -float("inf")],
                         ids=repr)
def test_supervisor_and_facade_arguments(sup: TaskSupervisor, value: Any) -> None:
    valid_count = _ok_count(value)  # 10**100 is a (huge) valid upper bound
    if not valid_count:
        with pytest.raises(ValueError):
            sup.create_lease_manager("bad", max_pools=value)
    with pytest.raises((ValueError, TypeError)):
        sup.create_lease_manager(value if not isinstance(value, str) else "", max_pools=1)
    pool = sup.create_lease_manager("cpu", max_pools=1)
    if not valid_count:
        with pytest.raises(ValueError):
            sup.create_work_grinder("g-bad", pool, batch_size_threshold=value)
    if not (isinstance(value, (int, float)) and not isinstance(value, bool)
            and value == value and 0 <= value < float("inf")):
        with pytest.raises(ValueError):
            pool.run(compute, 1, timeout=value)
        if not isinstance(value, bool):  # wait=True/False are the documented modes
            with pytest.raises(ValueError):
                sup.stop(wait=value)
    grinder = sup.create_work_grinder("g", pool, max_wait_seconds=0.01)
    assert grinder.submit(compute, 3, timeout=30) == compute(3)
    assert pool.run(compute, 4, timeout=30) == compute(4)
    _figures["rejected"] += 3
    _figures["calls_after"] += 2


@pytest.mark.parametrize("value", [float("nan"), -1, "x", float("inf"), -(10**100)], ids=repr)
def test_worker_and_aloop_arguments(value: Any) -> None:
    with pytest.raises(ValueError):
        BackgroundIntervalWorker(interval=value)
    aloop = ALoop("hostile")
    aloop.start()
    try:
        with pytest.raises(ValueError):
            aloop.stop(wait=value)
        assert aloop.call(asyncio.sleep, 0, result=7) == 7
    finally:
        aloop.stop()
    _figures["rejected"] += 2
    _figures["calls_after"] += 1


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_base_exceptions_in_workers_end_only_their_item(sup: TaskSupervisor, backend: str) -> None:
    pool = sup.create_lease_manager("cpu", backend=backend, max_pools=1, workers_per_pool=1)
    grinder = sup.create_work_grinder("g", pool, batch_size_threshold=3, max_wait_seconds=0.01)
    futures = [
        grinder.enqueue(raise_base, "exit"),
        grinder.enqueue(raise_base, "interrupt"),
        grinder.enqueue(compute, 9),
    ]
    concurrent.futures.wait(futures, timeout=60)
    assert isinstance(futures[0].exception(), SystemExit)
    assert isinstance(futures[1].exception(), KeyboardInterrupt)
    assert futures[2].result() == compute(9)
    with pool.lease() as lease:
        for kind, expected in (("exit", SystemExit), ("interrupt", KeyboardInterrupt)):
            future = lease.executor.submit(raise_base, kind)
            assert isinstance(future.exception(60), (expected, concurrent.futures.BrokenExecutor))
    assert grinder.submit(compute, 1, timeout=60) == compute(1)
    assert pool.run(compute, 2, timeout=60) == compute(2)
    _figures["calls_after"] += 2


def test_unpicklable_callables_and_results_on_the_process_backend(sup: TaskSupervisor) -> None:
    pool = sup.create_lease_manager("cpu", backend="process", max_pools=1, workers_per_pool=1)
    grinder = sup.create_work_grinder("g", pool, batch_size_threshold=3, max_wait_seconds=0.01)
    lock = threading.Lock()
    futures = [
        grinder.enqueue(lambda: 1),
        grinder.enqueue(unpicklable_result),
        grinder.enqueue(compute, lock),  # unpicklable argument
        grinder.enqueue(compute, 6),
    ]
    concurrent.futures.wait(futures, timeout=60)
    for future in futures[:3]:
        assert future.exception() is not None
    assert futures[3].result() == compute(6)
    with pool.lease() as lease:
        with pytest.raises(Exception):  # noqa: B017 - pickling errors vary by version
            lease.run(lambda: 1, timeout=60)
        with pytest.raises(Exception):  # noqa: B017
            lease.run(unpicklable_result, timeout=60)
        assert lease.run(compute, 7, timeout=60) == compute(7)
    assert grinder.submit(compute, 8, timeout=60) == compute(8)
    _figures["calls_after"] += 3


@pytest.mark.parametrize(
    "provided", [-5, 10**100, 2.5, float("nan"), float("inf"), "many", None, True, "raise"],
    ids=repr,
)
def test_hostile_size_provider_values_keep_the_manager_in_range(provided: Any) -> None:
    def provider() -> Any:
        if provided == "raise":
            raise RuntimeError("provider down")
        return provided

    async def scenario() -> tuple[int, int]:
        manager = LeasedExecutorManager(
            max_pools=3, min_pools=1, units_per_pool=1, size_provider=provider
        )
        await manager.start()
        try:
            desired = manager.desired_executor_count()
            manager.notify_scale_changed()
            await asyncio.sleep(0)
            async with await manager.acquire() as lease:
                assert await lease.run(compute, 3) == compute(3)
            return desired, manager.total_count
        finally:
            await manager.stop()

    desired, total = run(scenario())
    assert 1 <= desired <= 3 and 1 <= total <= 3
    expected_max = provided in (10**100, float("inf")) and not isinstance(provided, bool)
    assert desired == (3 if expected_max else (3 if provided == 2.5 else 1))
    _figures["accepted"] += 1
    _figures["calls_after"] += 1
