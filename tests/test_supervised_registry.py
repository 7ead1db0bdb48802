"""The supervised facades as schedulers (issue 5): names, the registry, and
blocking calls refused on the owning aloop's thread, from plain sync code.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from neoleasepool import LeasePoolNotStartedError, TaskSupervisor

from .supervised_work import square
from .support import started_supervisor
from .test_supervised import make_pool


@pytest.fixture
def sup(request: pytest.FixtureRequest) -> Iterator[TaskSupervisor]:
    with started_supervisor(f"svr-{request.node.name}", max_threads=4, stop_wait=15) as s:
        yield s

# ----------------------------------------------------- names and registry


def test_duplicate_scheduler_names_are_value_errors(sup: TaskSupervisor) -> None:
    pool = make_pool(sup, "thread", name="dup")
    threads_before = set(threading.enumerate())
    with pytest.raises(ValueError, match="dup"):
        make_pool(sup, "thread", name="dup")
    with pytest.raises(ValueError, match="dup"):
        sup.create_work_grinder("dup", pool)
    assert sup.get_scheduler("dup") is pool
    assert set(threading.enumerate()) <= threads_before  # nothing started for them


def test_get_scheduler_finds_facades_and_names_the_registered_ones(sup: TaskSupervisor) -> None:
    pool = make_pool(sup, "thread")
    grinder = sup.create_work_grinder("g", pool)
    assert sup.get_scheduler("cpu") is pool
    assert sup.get_scheduler("g") is grinder
    with pytest.raises(KeyError, match="cpu, g"):
        sup.get_scheduler("missing")


def test_unregister_and_stop_of_one_facade_leaves_the_others_running(
    sup: TaskSupervisor,
) -> None:
    first = make_pool(sup, "thread", name="first")
    second = make_pool(sup, "thread", name="second")
    g1 = sup.create_work_grinder("g1", first, max_wait_seconds=0.01)
    g2 = sup.create_work_grinder("g2", second, max_wait_seconds=0.01)

    sup.unregister_scheduler(g1)
    g1.stop()
    assert g1.stopped
    with pytest.raises(LeasePoolNotStartedError):
        g1.submit(square, 1)
    assert first.run(square, 2) == 4  # its manager still leases
    assert g2.submit(square, 3) == 9

    sup.unregister_scheduler(first)
    first.stop()
    assert first.stopped
    with pytest.raises(LeasePoolNotStartedError):
        first.acquire()
    assert second.run(square, 4) == 16
    assert g2.submit(square, 5) == 25
    assert set(sup.get_schedulers()) == {"second", "g2"}
    first.stop()  # idempotent
    g1.stop()


def test_stopping_a_manager_first_stops_its_grinder_and_drains_it(
    sup: TaskSupervisor,
) -> None:
    pool = make_pool(sup, "thread", name="cpu")
    grinder = sup.create_work_grinder("g", pool, batch_size_threshold=50, max_wait_seconds=5)
    futures = [grinder.enqueue(square, i) for i in range(20)]  # held back by the batch wait
    sup.unregister_scheduler(grinder)
    sup.unregister_scheduler(pool)
    done = threading.Event()
    stopper = threading.Thread(target=lambda: (pool.stop(wait=True), done.set()))
    stopper.start()
    try:
        assert done.wait(30), "stopping a manager with a live grinder hung"
    finally:
        stopper.join(30)
    assert grinder.stopped
    assert [f.result(timeout=0) for f in futures] == [i * i for i in range(20)]


def test_a_stopped_facades_name_can_be_used_again(sup: TaskSupervisor) -> None:
    pool = make_pool(sup, "thread")
    grinder = sup.create_work_grinder("g", pool)
    for facade in (grinder, pool):
        sup.unregister_scheduler(facade)
    pool.stop()
    again = make_pool(sup, "thread")  # its dedicated aloop is restarted
    assert again is not pool and again.aloop.active
    assert sup.get_scheduler("cpu") is again
    grinder = sup.create_work_grinder("g", again, max_wait_seconds=0.01)
    assert again.run(square, 3) == 9 and grinder.submit(square, 4) == 16


def test_create_before_start_is_refused() -> None:
    idle = TaskSupervisor(id="idle")
    with pytest.raises(LeasePoolNotStartedError, match="start"):
        idle.create_lease_manager("cpu", max_pools=1)


def test_dedicated_aloop_unless_a_default_or_explicit_one_is_given(sup: TaskSupervisor) -> None:
    own = make_pool(sup, "thread", name="own")
    assert own.aloop.name == "leasepool_own"
    named = sup.create_aloop("mine")
    explicit = make_pool(sup, "thread", name="explicit", aloop="mine")
    assert explicit.aloop is named
    default = sup.create_aloop("dflt", default=True)
    implicit = make_pool(sup, "thread", name="implicit")
    assert implicit.aloop is default
    assert [p.run(square, 2) for p in (own, explicit, implicit)] == [4, 4, 4]

    sup.unregister_scheduler(own)
    own.stop()
    assert not own.aloop.active  # the facade owned it
    sup.unregister_scheduler(explicit)
    explicit.stop()
    assert named.active  # not its to stop
    assert implicit.run(square, 3) == 9


# --------------------------------------------- blocking on the aloop thread


def test_blocking_calls_on_the_owning_aloop_raise_instead_of_deadlocking(
    sup: TaskSupervisor,
) -> None:
    pool = make_pool(sup, "thread")
    grinder = sup.create_work_grinder("g", pool, max_wait_seconds=0.01)
    lease = pool.acquire()
    calls: dict[str, Any] = {
        "acquire": lambda: pool.acquire(),
        "lease": lambda: pool.lease().__enter__(),
        "run": lambda: pool.run(square, 1),
        "release": lambda: pool.release(lease),
        "lease.run": lambda: lease.run(square, 1),
        "lease.release": lambda: lease.release(),
        "stop": lambda: pool.stop(),
        "grinder.submit": lambda: grinder.submit(square, 1),
        "grinder.enqueue": lambda: grinder.enqueue(square, 1),
        "grinder.stop": lambda: grinder.stop(),
    }

    async def on_the_aloop() -> dict[str, str]:
        errors = {}
        for name, call in calls.items():
            try:
                call()
            except RuntimeError as exc:
                errors[name] = type(exc).__name__
        return errors

    errors = pool.aloop.call_with_timeout(30, on_the_aloop)
    assert errors == dict.fromkeys(calls, "WrongLoopError")
    assert not pool.stopped and not grinder.stopped
    assert lease.active
    lease.release()
    assert grinder.submit(square, 2) == 4


def test_stats_work_from_the_aloop_thread_too(sup: TaskSupervisor) -> None:
    pool = make_pool(sup, "thread")
    grinder = sup.create_work_grinder("g", pool)

    async def on_the_aloop() -> tuple[Any, Any]:
        return pool.stats()["name"], grinder.stats()["name"]

    assert pool.aloop.call(on_the_aloop) == ("cpu", "g")


def test_timeouts_are_validated(sup: TaskSupervisor) -> None:
    pool = make_pool(sup, "thread")
    grinder = sup.create_work_grinder("g", pool)
    for bad in (-1, float("nan"), float("inf"), "1", True):
        with pytest.raises(ValueError, match="timeout"):
            pool.run(square, 1, timeout=bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="timeout"):
            grinder.submit(square, 1, timeout=bad)  # type: ignore[arg-type]
    assert pool.leased_count == 0
    assert grinder.stats()["items_submitted"] == 0
