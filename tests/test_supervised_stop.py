"""Stopping the supervised facades (issue 5): order, drain, cancel, bounds.

``task_supervisor.stop()`` stops grinders (draining by default) before the
managers they lease from, then the aloops, then the pool; nothing submitted
is lost or left unresolved, and no thread or child process outlives it (the
autouse leak fixture checks the last part).
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from neoleasepool import (
    LeaseExpiredError,
    LeasePoolNotStartedError,
    SupervisedLeaseManager,
    SupervisedWorkGrinder,
    TaskSupervisor,
    task_supervisor,
)

from .supervised_work import FileGate, gated, square, touch_then
from .support import ctrl_c_during_block, outcome, started_supervisor, wait_until, waits_in_block

BACKENDS = ["thread", "process"]


@pytest.fixture
def sup(request: pytest.FixtureRequest) -> Iterator[TaskSupervisor]:
    with started_supervisor(f"svs-{request.node.name}", max_threads=4, stop_wait=15) as s:
        yield s


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def setup_pair(
    sup: TaskSupervisor, backend: str, **grinder_kwargs: Any
) -> tuple[SupervisedLeaseManager, SupervisedWorkGrinder]:
    pool = sup.create_lease_manager("cpu", backend=backend, max_pools=1, workers_per_pool=1)
    grinder_kwargs.setdefault("batch_size_threshold", 1)
    grinder_kwargs.setdefault("max_wait_seconds", 0.01)
    return pool, sup.create_work_grinder("g", pool, **grinder_kwargs)


def record_stop(facade: Any, log: list[str], probe: Callable[[], object]) -> None:
    """Wrap ``facade.stop`` so that it logs its name and ``probe()`` first."""
    original = facade.stop

    def stop(*args: Any, **kwargs: Any) -> None:
        log.append(f"{facade.name}:{probe()}")
        original(*args, **kwargs)

    facade.stop = stop


# ------------------------------------------------------------------ drain


def test_stop_drains_grinders_before_their_managers_then_aloops_then_the_pool(
    sup: TaskSupervisor, backend: str
) -> None:
    pool = sup.create_lease_manager("cpu", backend=backend, max_pools=2, workers_per_pool=2)
    first = sup.create_work_grinder("g1", pool, batch_size_threshold=50, max_wait_seconds=5)
    second = sup.create_work_grinder("g2", pool, batch_size_threshold=50, max_wait_seconds=5)
    # The batch wait holds every item back: all of them are queued at stop.
    futures = [g.enqueue(square, i) for i in range(20) for g in (first, second)]
    log: list[str] = []

    def probe() -> str:
        spawned = sup.spawn(lambda: "pool").result(timeout=10)  # the pool still runs
        return f"{pool.manager.stats()['state']}/{pool.aloop.active}/{spawned}"

    for facade in (pool, first, second):
        record_stop(facade, log, probe)
    sup.stop()

    assert log == [
        "g2:running/True/pool", "g1:running/True/pool", "cpu:running/True/pool"
    ]
    assert [outcome(f) for f in futures] == [i * i for i in range(20) for _ in range(2)]
    assert first.stopped and second.stopped and pool.stopped
    assert not pool.aloop.active and not sup.active
    assert pool.stats()["state"] == "stopped"
    assert first.stats()["items_completed"] == 20 and not first.stats()["started"]


def test_blocking_submits_in_flight_during_stop_get_their_results(
    sup: TaskSupervisor, backend: str, tmp_path: Path
) -> None:
    pool, grinder = setup_pair(sup, backend)
    gate = FileGate(tmp_path)
    results: list[object] = []
    submitters = [
        threading.Thread(target=lambda: results.append(grinder.submit(gated, *gate.args("g")))),
        threading.Thread(target=lambda: results.append(grinder.submit(square, 5))),
    ]
    submitters[0].start()
    wait_until(gate.has_started, timeout=30)
    submitters[1].start()
    wait_until(lambda: grinder.stats()["items_submitted"] == 2, timeout=30)
    stopper = threading.Thread(target=sup.stop)
    stopper.start()
    wait_until(lambda: not sup.active, timeout=30)
    gate.open()  # the drain waits for the running call, then runs the queued one
    for thread in (*submitters, stopper):
        thread.join(30)
    assert sorted(map(str, results)) == ["25", "g"]
    assert grinder.stopped and pool.stopped


def test_stop_from_another_thread_while_threads_submit_loses_nothing(
    sup: TaskSupervisor, backend: str
) -> None:
    pool = sup.create_lease_manager("cpu", backend=backend, max_pools=2, workers_per_pool=2)
    grinder = sup.create_work_grinder("g", pool, batch_size_threshold=16, max_wait_seconds=0.02)
    futures: list[tuple[int, concurrent.futures.Future[Any]]] = []
    answered: list[tuple[int, object]] = []
    refused: list[BaseException] = []
    lock = threading.Lock()

    def feed(worker: int) -> None:
        for i in range(10_000):
            value = worker * 100_000 + i
            try:
                if i % 2:
                    future = grinder.enqueue(square, value)
                    with lock:
                        futures.append((value, future))
                else:
                    answered.append((value, grinder.submit(square, value, timeout=30)))
            except LeasePoolNotStartedError as exc:  # refused at the door: not lost
                refused.append(exc)
                return

    feeders = [threading.Thread(target=feed, args=(n,)) for n in range(4)]
    for feeder in feeders:
        feeder.start()
    wait_until(lambda: len(answered) >= 20, timeout=30)
    stopper = threading.Thread(target=sup.stop)
    stopper.start()
    stopper.join(60)
    for feeder in feeders:
        feeder.join(30)
    assert not stopper.is_alive() and not any(f.is_alive() for f in feeders)
    assert len(refused) == 4  # every feeder saw the stop, none saw anything else
    assert futures and all(outcome(f) == value * value for value, f in futures)
    assert all(result == value * value for value, result in answered)
    enqueued = grinder.stats()
    assert enqueued["items_submitted"] == len(futures) + len(answered)
    assert enqueued["items_completed"] == enqueued["items_submitted"]
    if backend == "thread":  # the stop drained the direct lane too
        assert enqueued["items_direct"] > 0


def test_a_cancelling_stop_while_threads_submit_ends_every_call_once(
    sup: TaskSupervisor, backend: str
) -> None:
    pool = sup.create_lease_manager("cpu", backend=backend, max_pools=1, workers_per_pool=2)
    grinder = sup.create_work_grinder("g", pool, batch_size_threshold=8, max_wait_seconds=0.02)
    ends: list[str] = []
    wrong: list[object] = []
    lock = threading.Lock()

    def feed(worker: int) -> None:
        for i in range(100_000):
            value = worker * 1_000_000 + i
            try:
                result = grinder.submit(square, value, timeout=30)
            except concurrent.futures.CancelledError:
                end = "cancelled"
            except LeasePoolNotStartedError:  # refused at the door: never submitted
                with lock:
                    ends.append("refused")
                return
            else:
                end = "completed"
                if result != value * value:
                    wrong.append((value, result))
            with lock:
                ends.append(end)

    feeders = [threading.Thread(target=feed, args=(n,)) for n in range(6)]
    for feeder in feeders:
        feeder.start()
    wait_until(lambda: ends.count("completed") >= 200, timeout=30)
    stopper = threading.Thread(target=lambda: sup.stop(cancel_tasks=True))
    stopper.start()
    stopper.join(60)
    for feeder in feeders:
        feeder.join(30)
    assert not stopper.is_alive() and not any(f.is_alive() for f in feeders)
    assert wrong == []
    assert ends.count("refused") == 6  # each feeder ended at the door, not in a hang
    stats = grinder.stats()
    assert stats["items_submitted"] == ends.count("completed") + ends.count("cancelled")
    assert stats["items_completed"] == ends.count("completed")
    assert stats["items_cancelled"] == ends.count("cancelled")
    assert stats["items_failed"] == 0


def test_leases_held_by_sync_code_drain_when_the_supervisor_stops(
    sup: TaskSupervisor, backend: str, tmp_path: Path
) -> None:
    pool = sup.create_lease_manager("cpu", backend=backend, max_pools=1, workers_per_pool=1)
    gate = FileGate(tmp_path)
    lease = pool.acquire(owner="sync")
    running = lease.executor.submit(gated, *gate.args("drained"))
    queued = lease.executor.submit(square, 12)
    wait_until(gate.has_started, timeout=30)
    stopper = threading.Thread(target=sup.stop)
    stopper.start()
    wait_until(lambda: pool.manager.stats()["state"] == "stopping", timeout=30)
    with pytest.raises(LeaseExpiredError):
        lease.run(square, 1)  # no new work on a stopping manager
    gate.open()
    stopper.join(30)
    assert not stopper.is_alive()
    assert (outcome(running), outcome(queued)) == ("drained", 144)
    lease.release()  # idempotent after the stop


# ------------------------------------------------------------------ cancel


@pytest.mark.parametrize("how", ["cancel_tasks", "wait_false"])
def test_stop_that_cancels_ends_every_queued_item_cancelled(
    sup: TaskSupervisor, backend: str, tmp_path: Path, how: str
) -> None:
    pool, grinder = setup_pair(sup, backend)
    gate = FileGate(tmp_path)
    blocker = grinder.enqueue(gated, *gate.args("late"))
    wait_until(gate.has_started, timeout=30)
    queued = [grinder.enqueue(touch_then, str(tmp_path / f"ran-{i}"), i) for i in range(20)]
    kwargs = {"cancel_tasks": True} if how == "cancel_tasks" else {"wait": False}
    stopper = threading.Thread(target=lambda: sup.stop(**kwargs))
    stopper.start()
    try:
        wait_until(lambda: all(f.done() for f in queued), timeout=30)
    finally:
        gate.open()  # a running thread cannot be killed; let it end
        stopper.join(30)
    assert not stopper.is_alive()
    assert [outcome(f) for f in queued] == ["cancelled"] * 20
    assert outcome(blocker) in ("cancelled", "late")
    assert not list(tmp_path.glob("ran-*"))  # none of them ran
    stats = grinder.stats()
    assert stats["items_cancelled"] + stats["items_completed"] == 21
    assert stats["items_cancelled"] >= 20
    assert pool.stopped and not pool.aloop.active


@pytest.mark.parametrize("cancel_tasks", [False, True], ids=["drain", "cancel"])
def test_stop_with_wait_seconds_and_a_stuck_callable_ends_within_its_bound(
    sup: TaskSupervisor, backend: str, tmp_path: Path, cancel_tasks: bool
) -> None:
    pool, grinder = setup_pair(sup, backend)
    gate = FileGate(tmp_path)
    stuck = grinder.enqueue(gated, *gate.args("stuck"))
    queued = grinder.enqueue(square, 3)
    wait_until(gate.has_started, timeout=30)
    began = time.monotonic()
    try:
        sup.stop(wait=1.0, cancel_tasks=cancel_tasks)
        elapsed = time.monotonic() - began
    finally:
        gate.open()  # threads cannot be killed: let the stuck one end
    assert elapsed < 8.0, f"stop(wait=1.0) took {elapsed:.1f}s"
    assert not sup.active and grinder.stopped and pool.stopped
    assert outcome(queued) == "cancelled"
    assert outcome(stuck) == "cancelled"  # its result, if any, is discarded


# ----------------------------------------------------------------- signals


def test_sigint_during_block_stops_everything_gracefully(
    sup: TaskSupervisor, backend: str
) -> None:
    assert threading.current_thread() is threading.main_thread()
    pool = sup.create_lease_manager("cpu", backend=backend, max_pools=2, workers_per_pool=1)
    grinder = sup.create_work_grinder("g", pool, batch_size_threshold=100, max_wait_seconds=5)
    futures = [grinder.enqueue(square, i) for i in range(30)]  # queued at the signal
    ctrl_c_during_block(sup)
    assert not sup.active
    assert pool.stopped and grinder.stopped and not pool.aloop.active
    assert [outcome(f) for f in futures] == [i * i for i in range(30)]


def test_block_returns_when_another_thread_stops_the_supervisor(sup: TaskSupervisor) -> None:
    pool = sup.create_lease_manager("cpu", max_pools=1, workers_per_pool=1)
    grinder = sup.create_work_grinder("g", pool, batch_size_threshold=10, max_wait_seconds=5)
    futures = [grinder.enqueue(square, i) for i in range(5)]
    stopper = threading.Thread(target=lambda: (wait_until(lambda: waits_in_block(sup)), sup.stop()))
    stopper.start()
    sup.block()
    stopper.join(30)
    assert not sup.active and grinder.stopped and pool.stopped
    assert [outcome(f) for f in futures] == [0, 1, 4, 9, 16]


# ---------------------------------------------------- the global supervisor


def test_global_task_supervisor_runs_the_readme_flow_and_stops() -> None:
    assert not task_supervisor.active, "another test left the global supervisor running"
    task_supervisor.start()
    try:
        pool = task_supervisor.create_lease_manager(
            "global-cpu", backend="thread", max_pools=2, workers_per_pool=2
        )
        with pool.lease(owner="job-1", lease_seconds=30) as lease:
            assert lease.run(pow, 2, 10) == 1024
        grinder = task_supervisor.create_work_grinder(
            "global-squares", pool, batch_size_threshold=10, max_wait_seconds=0.5
        )
        futures = [grinder.enqueue(pow, i, 2) for i in range(30)]
        assert grinder.submit(pow, 4, 2) == 16
        assert task_supervisor.get_scheduler("global-squares") is grinder
    finally:
        task_supervisor.stop()
    assert not task_supervisor.active and not task_supervisor.get_schedulers()
    assert [outcome(f) for f in futures] == [i * i for i in range(30)]
    assert grinder.stopped and pool.stopped


# ---------------------------------------------------------- after the stop


def test_facades_refuse_work_after_the_stop_and_still_report(sup: TaskSupervisor) -> None:
    pool, grinder = setup_pair(sup, "thread")
    assert grinder.submit(square, 2) == 4
    sup.stop()
    with pytest.raises(LeasePoolNotStartedError):
        pool.acquire()
    with pytest.raises(LeasePoolNotStartedError):
        grinder.submit(square, 1)
    with pytest.raises(LeasePoolNotStartedError):
        grinder.enqueue(square, 1)
    assert pool.stats()["state"] == "stopped"
    assert grinder.stats()["items_completed"] == 1
    pool.stop()  # idempotent
    grinder.stop()
