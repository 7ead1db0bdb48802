"""Stopping under load: every way of stopping ends within its bound and
leaves no thread, no child process and no open file descriptor behind.

Also the reported stop bugs: a bounded ``stop(drain=False)`` of a manager,
the asyncio wrappers a timed-out drain used to leave unretrieved,
``stop(stop_schedulers=False)`` with our facades registered, and a stop
called from inside a grinder callable.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from neoleasepool import LeasedExecutorManager, TaskSupervisor

from .chaos_work import compute, pid_then, sleep_then
from .figures import report
from .resources import Snapshot, proc_children, warm_forkserver
from .support import ctrl_c_during_block, run, wait_until

BACKENDS = ["thread", "process"]
ITEMS = 300

_figures = {"stops": 0, "items": 0, "bounds_held": 0}


@pytest.fixture(scope="module", autouse=True)
def _summary(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    report(request.config, "shutdown-under-load", **_figures)


@pytest.fixture
def clean() -> Iterator[Snapshot]:
    """A baseline taken after the forkserver runs; checked after the test."""
    warm_forkserver()
    gc.collect()
    snapshot = Snapshot.take()
    yield snapshot
    snapshot.assert_clean()


def _supervisor(name: str) -> TaskSupervisor:
    sup = TaskSupervisor(id=f"sul-{name}")
    sup.set_thread_pool(max_size=4)
    sup.start()
    return sup


def _outcome(future: concurrent.futures.Future[Any]) -> object:
    if future.cancelled():
        return "cancelled"
    exc = future.exception()
    return exc if exc is not None else future.result()


def _timed_stop(sup: TaskSupervisor, bound: float, **kwargs: Any) -> float:
    start = time.monotonic()
    sup.stop(**kwargs)
    elapsed = time.monotonic() - start
    _figures["stops"] += 1
    assert elapsed < bound, f"stop({kwargs}) took {elapsed:.1f}s, bound {bound}s"
    _figures["bounds_held"] += 1
    return elapsed


@pytest.mark.parametrize("backend", BACKENDS)
def test_stop_with_drain_runs_every_queued_item(backend: str, clean: Snapshot) -> None:
    sup = _supervisor(f"drain-{backend}")
    pool = sup.create_lease_manager("cpu", backend=backend, max_pools=2, workers_per_pool=2)
    grinder = sup.create_work_grinder("g", pool, batch_size_threshold=25, max_wait_seconds=0.05)
    futures = [grinder.enqueue(compute, i) for i in range(ITEMS)]
    _timed_stop(sup, 60)
    _figures["items"] += ITEMS
    assert [f.result(0) for f in futures] == [compute(i) for i in range(ITEMS)]
    assert pool.stopped and grinder.stopped


@pytest.mark.parametrize("backend", BACKENDS)
def test_stop_with_cancel_tasks_ends_every_item_quickly(backend: str, clean: Snapshot) -> None:
    sup = _supervisor(f"cancel-{backend}")
    pool = sup.create_lease_manager("cpu", backend=backend, max_pools=1, workers_per_pool=1)
    grinder = sup.create_work_grinder("g", pool, batch_size_threshold=5, max_wait_seconds=0.01)
    futures = [grinder.enqueue(sleep_then, 0.05, i) for i in range(ITEMS)]
    wait_until(lambda: any(f.done() for f in futures), timeout=30)
    _timed_stop(sup, 20, cancel_tasks=True)
    _figures["items"] += ITEMS
    outcomes = [_outcome(f) for f in futures]
    assert all(f.done() for f in futures)
    assert "cancelled" in outcomes, "a cancelling stop ran the whole backlog"
    assert all(o == "cancelled" or o == i for i, o in enumerate(outcomes))


def test_bounded_stop_kills_a_stuck_process_call(tmp_path: Path, clean: Snapshot) -> None:
    sup = _supervisor("stuck-process")
    pool = sup.create_lease_manager("cpu", backend="process", max_pools=1, workers_per_pool=1)
    grinder = sup.create_work_grinder("g", pool, batch_size_threshold=1, max_wait_seconds=0.01)
    marker = tmp_path / "pid"
    stuck = grinder.enqueue(pid_then, str(marker), 600, 1)
    wait_until(marker.exists, timeout=60)
    worker = int(marker.read_text())
    _timed_stop(sup, 2 + 10, wait=2)  # the bound, plus the kill grace
    assert stuck.done()
    assert worker not in proc_children()


def test_bounded_stop_of_a_stuck_thread_call_ends_within_its_bound(clean: Snapshot) -> None:
    sup = _supervisor("stuck-thread")
    pool = sup.create_lease_manager("cpu", backend="thread", max_pools=1, workers_per_pool=1)
    grinder = sup.create_work_grinder("g", pool, batch_size_threshold=1, max_wait_seconds=0.01)
    gate = threading.Event()
    started = threading.Event()

    def stuck() -> str:
        started.set()
        gate.wait(60)  # threads cannot be killed: the test opens it afterwards
        return "late"

    future = grinder.enqueue(stuck)
    assert started.wait(30)
    try:
        _timed_stop(sup, 2 + 10, wait=2)
    finally:
        gate.set()
    wait_until(future.done, timeout=30)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigint_during_block_under_load_stops_everything(backend: str, clean: Snapshot) -> None:
    assert threading.current_thread() is threading.main_thread()
    sup = _supervisor(f"sigint-{backend}")
    pool = sup.create_lease_manager("cpu", backend=backend, max_pools=2, workers_per_pool=2)
    grinder = sup.create_work_grinder("g", pool, batch_size_threshold=20, max_wait_seconds=0.02)
    futures: list[concurrent.futures.Future[Any]] = []

    def feed() -> None:
        for i in range(ITEMS):
            futures.append(grinder.enqueue(compute, i))

    start = time.monotonic()
    ctrl_c_during_block(sup, feed)
    _figures["stops"] += 1
    assert time.monotonic() - start < 60
    _figures["bounds_held"] += 1
    _figures["items"] += ITEMS
    assert not sup.active and pool.stopped and grinder.stopped
    assert [f.result(0) for f in futures] == [compute(i) for i in range(ITEMS)]


# ------------------------------------------------------- reported bugs


def test_manager_stop_without_drain_bounds_the_join_and_kills_workers(
    tmp_path: Path, clean: Snapshot
) -> None:
    marker = tmp_path / "pid"

    async def scenario() -> tuple[float, list[dict[str, Any]], int]:
        loop = asyncio.get_running_loop()
        errors: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, context: errors.append(context))
        manager = LeasedExecutorManager(backend="process", max_pools=1, workers_per_pool=1)
        await manager.start()
        lease = await manager.acquire()
        lease.executor.submit(pid_then, str(marker), 600, 1)
        await asyncio.to_thread(wait_until, marker.exists, timeout=60)
        start = time.monotonic()
        await manager.stop(drain=False, timeout=1)
        elapsed = time.monotonic() - start
        gc.collect()
        await asyncio.sleep(0)
        return elapsed, errors, int(marker.read_text())

    elapsed, errors, worker = run(scenario())
    _figures["stops"] += 1
    assert elapsed < 1 + 10, f"stop(drain=False, timeout=1) took {elapsed:.1f}s"
    _figures["bounds_held"] += 1
    assert worker not in proc_children()
    assert errors == []


@pytest.mark.parametrize("backend", ["process", "stdlib-process"])
def test_timed_out_drain_leaves_no_unretrieved_future_exception(
    tmp_path: Path, clean: Snapshot, backend: str
) -> None:
    marker = tmp_path / "pid"

    async def scenario() -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        errors: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, context: errors.append(context))
        manager = LeasedExecutorManager(backend=backend, max_pools=1, workers_per_pool=1)
        await manager.start()
        lease = await manager.acquire()
        running = lease.executor.submit(pid_then, str(marker), 600, 1)
        await asyncio.to_thread(wait_until, marker.exists, timeout=60)
        await manager.stop(timeout=0.5)  # the drain times out: the call is stopped
        concurrent.futures.wait([running], timeout=10)
        if backend == "process":  # our pool stops the running call it cancels
            assert running.cancelled()
        else:  # ProcessPoolExecutor cannot: the kill breaks it
            assert isinstance(running.exception(0), concurrent.futures.BrokenExecutor)
        pid = int(marker.read_text())
        with pytest.raises(ProcessLookupError):  # its worker was stopped and joined
            os.kill(pid, 0)
        gc.collect()
        await asyncio.sleep(0)
        return errors

    errors = run(scenario())
    assert [e.get("message") for e in errors] == []


@pytest.mark.parametrize("wait", [2, True])
def test_stop_schedulers_false_still_stops_our_facades(wait: Any, clean: Snapshot) -> None:
    sup = _supervisor(f"keep-{wait}")
    pool = sup.create_lease_manager("cpu", backend="thread", max_pools=2, workers_per_pool=2)
    grinder = sup.create_work_grinder("g", pool, batch_size_threshold=10, max_wait_seconds=0.01)
    futures = [grinder.enqueue(compute, i) for i in range(50)]
    stopper = threading.Thread(target=sup.stop, kwargs={"wait": wait, "stop_schedulers": False})
    stopper.start()
    stopper.join(30)
    _figures["stops"] += 1
    assert not stopper.is_alive(), f"stop(wait={wait}, stop_schedulers=False) hung"
    _figures["bounds_held"] += 1
    assert pool.stopped and grinder.stopped
    assert [f.result(0) for f in futures] == [compute(i) for i in range(50)]


@pytest.mark.parametrize("via", ["grinder", "lease"])
def test_stop_from_inside_a_thread_backend_callable_does_not_deadlock(
    via: str, clean: Snapshot
) -> None:
    sup = _supervisor(f"self-stop-{via}")
    pool = sup.create_lease_manager("cpu", backend="thread", max_pools=1, workers_per_pool=2)
    grinder = sup.create_work_grinder("g", pool, batch_size_threshold=1, max_wait_seconds=0.01)

    def stop_then(value: int) -> int:
        sup.stop()
        return value

    start = time.monotonic()
    if via == "grinder":
        result = grinder.submit(stop_then, 5, timeout=30)
    else:
        with pool.lease() as lease:
            result = lease.run(stop_then, 5, timeout=30)
    done = threading.Event()
    threading.Thread(target=lambda: (sup.block(), done.set())).start()
    assert done.wait(30), "the supervisor never finished stopping"
    _figures["stops"] += 1
    assert time.monotonic() - start < 30
    _figures["bounds_held"] += 1
    assert result == 5
    assert not sup.active and pool.stopped and grinder.stopped
