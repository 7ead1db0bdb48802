"""No hang on an internal error: a fault injected at each internal step in turn.

Each test makes one step of our own machinery raise (a batcher or lease
worker task, a done-callback, settling, the hand-off, the manager's
checker, a backend's pool creation or shutdown, a worker's or a job's
loop) and asserts what the contract promises: every item and waiter the
component holds ends within a deadline (with the injected error, or a
``LeasePoolError`` chained to it), the fault is logged once, and the
component is either still usable or visibly broken
(``stats()["state"] == "broken"``, and the next call raises at once); a
stop still returns, and a restart works again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from neoleasepool import (
    BackgroundWorker,
    LeasedExecutorManager,
    LeasePoolError,
    LeasePoolNotStartedError,
    TaskSupervisor,
    WorkGrinder,
)
from neoleasepool.grinder.batches import Load
from neoleasepool.leasing.lease import LeasedExecutor
from tests.support import await_until, run, started_supervisor, wait_until

#: Every future must end within this many seconds of the fault.
DEADLINE = 30.0


class InjectedFault(RuntimeError):
    """The error a fault raises: a stand-in for a bug in our own code."""


class Fault:
    """Makes wrapped callables raise :class:`InjectedFault`, ``times`` times
    (``None``: every call) once ``after`` calls went through, and counts how
    often it did."""

    def __init__(self, times: int | None = None, after: int = 0) -> None:
        self.times = times
        self.after = after
        self.hits = 0
        self.hit = threading.Event()
        self._lock = threading.Lock()

    def _strike(self) -> bool:
        with self._lock:
            if self.after:
                self.after -= 1
                return False
            if self.times is not None and self.hits >= self.times:
                return False
            self.hits += 1
        self.hit.set()
        return True

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def faulty(*args: Any, **kwargs: Any) -> Any:
            if self._strike():
                raise InjectedFault("injected fault")
            return fn(*args, **kwargs)

        return faulty

    def wrap_async(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        async def faulty(*args: Any, **kwargs: Any) -> Any:
            if self._strike():
                raise InjectedFault("injected fault")
            return await fn(*args, **kwargs)

        return faulty


def caused_by_fault(exc: BaseException | None) -> bool:
    """Whether ``exc`` is the injected error, or a LeasePoolError chained to it."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, InjectedFault):
            return True
        if not isinstance(exc, LeasePoolError):
            return False
        exc, seen = exc.__cause__, seen + 1
    return False


def square(x: int) -> int:
    return x * x


# ------------------------------------------------------------------ grinder


@dataclass(frozen=True)
class Step:
    """One internal step of the grinder, and how to make it raise."""

    name: str
    install: Callable[[WorkGrinder, Fault, pytest.MonkeyPatch], None]
    breaks: bool  # a bug in our machinery breaks the run; others fail one batch
    times: int | None = None


def _batcher(g: WorkGrinder, fault: Fault, mp: pytest.MonkeyPatch) -> None:
    assert g._pipeline is not None
    mp.setattr(g._pipeline, "_take", fault.wrap(g._pipeline._take))


def _lease_worker(g: WorkGrinder, fault: Fault, mp: pytest.MonkeyPatch) -> None:
    mp.setattr(Load, "wait_for_room", fault.wrap_async(Load.wait_for_room))


def _chunk_callback(g: WorkGrinder, fault: Fault, mp: pytest.MonkeyPatch) -> None:
    assert g._batches is not None
    mp.setattr(g._batches, "_chunk_finished", fault.wrap(g._batches._chunk_finished))


def _settling(g: WorkGrinder, fault: Fault, mp: pytest.MonkeyPatch) -> None:
    assert g._batches is not None
    mp.setattr(g._batches, "settle", fault.wrap(g._batches.settle))


def _runner(g: WorkGrinder, fault: Fault, mp: pytest.MonkeyPatch) -> None:
    handoff = g._intake.handoff
    mp.setattr(handoff, "_run", fault.wrap(handoff._run))


def _intake(g: WorkGrinder, fault: Fault, mp: pytest.MonkeyPatch) -> None:
    mp.setattr(g._intake, "accept", fault.wrap(g._intake.accept))


def _acquire(g: WorkGrinder, fault: Fault, mp: pytest.MonkeyPatch) -> None:
    manager = g._manager
    mp.setattr(manager, "acquire", fault.wrap_async(manager.acquire))


def _backend_submit(g: WorkGrinder, fault: Fault, mp: pytest.MonkeyPatch) -> None:
    mp.setattr(LeasedExecutor, "submit", fault.wrap(LeasedExecutor.submit))


STEPS = [
    Step("batcher", _batcher, breaks=True),
    Step("lease-worker", _lease_worker, breaks=True),
    Step("chunk-done-callback", _chunk_callback, breaks=True),
    Step("settling", _settling, breaks=True),
    Step("hand-off-runner", _runner, breaks=True),
    Step("intake", _intake, breaks=True),
    Step("manager-acquire", _acquire, breaks=False, times=1),
    Step("backend-submit", _backend_submit, breaks=False, times=1),
]


def _submit_from_thread(g: WorkGrinder, count: int, futures: list[Any], stop: Fault) -> None:
    """Submit from a plain thread until ``count`` items or the grinder refuses."""
    for i in range(count):
        try:
            future = g.submit_from_thread(square, i)
        except LeasePoolNotStartedError as exc:
            assert caused_by_fault(exc), exc
            return
        # ``futures`` is shared with the loop and another thread: wait on our
        # own future, not on whatever was appended last.
        futures.append((i, future))
        # Wait for it, as a caller of a blocking submit does: the hand-off
        # serves such callers (a deadline, not a hope: a hang fails the test).
        concurrent.futures.wait([future], DEADLINE)


async def _drive(g: WorkGrinder, fault: Fault) -> tuple[list[Any], list[BaseException]]:
    """Submit from the loop and from two threads until the fault struck and
    enough items went in; return every (input, future) and every error a
    submission raised."""
    futures: list[Any] = []
    refused: list[BaseException] = []
    threads = [
        threading.Thread(target=_submit_from_thread, args=(g, 300, futures, fault))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    try:
        for i in range(300):
            try:
                futures.append((i, await g.enqueue(square, i)))
            except LeasePoolNotStartedError as exc:
                refused.append(exc)
                break
            if i % 4 == 3:
                await asyncio.sleep(0.001)  # batches form and run meanwhile
    finally:
        for thread in threads:
            await asyncio.to_thread(thread.join, DEADLINE)
    return futures, refused


async def _all_end(futures: list[Any]) -> None:
    waits = [asyncio.wrap_future(f) if isinstance(f, concurrent.futures.Future) else f
             for _, f in futures]
    _, pending = await asyncio.wait(waits, timeout=DEADLINE) if waits else (set(), set())
    stuck = [(f.state, type(f).__name__) for _, f in futures if not f.done()]
    assert not pending, f"{len(pending)} of {len(waits)} item(s) never ended: {stuck}"
    for _, future in futures:
        if not future.cancelled():
            future.exception()  # retrieved: ends without an asyncio warning


@pytest.mark.parametrize("step", STEPS, ids=[s.name for s in STEPS])
def test_a_fault_at_each_grinder_step_ends_every_item(
    step: Step, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        manager = LeasedExecutorManager(backend="thread", max_pools=2, workers_per_pool=2)
        grinder = WorkGrinder(
            executor_manager=manager, batch_size_threshold=4, max_wait_seconds=0.005
        )
        await manager.start()
        await grinder.start()
        fault = Fault(step.times)
        try:
            step.install(grinder, fault, monkeypatch)
            with caplog.at_level(logging.ERROR, logger="neoleasepool.grinder"):
                futures, refused = await _drive(grinder, fault)
                await _all_end(futures)
            assert fault.hits >= 1, f"the fault at {step.name} never struck"
            failed = [f.exception() for _, f in futures if f.exception() is not None]
            assert failed, "the fault failed no item"
            for exc in failed:
                assert caused_by_fault(exc), f"an item failed with {exc!r}"
            for i, future in futures:
                if future.exception() is None:
                    assert future.result() == i * i  # nothing else went wrong
            stats = await grinder.astats()
            ended = stats["items_completed"] + stats["items_failed"] + stats["items_cancelled"]
            # nothing lost: every item counted in ended once (a loop item whose
            # queueing broke the grinder failed, and its caller got the error)
            extra = sum("queueing an item" in str(exc) for exc in refused)
            assert ended == stats["items_submitted"] == len(futures) + extra
            if step.breaks:
                assert stats["state"] == "broken"
                broken = [r for r in caplog.records if "grinder broken" in r.getMessage()]
                assert len(broken) == 1, [r.getMessage() for r in caplog.records]
                with pytest.raises(LeasePoolNotStartedError, match="broken") as raised:
                    await grinder.enqueue(square, 1)
                assert caused_by_fault(raised.value)
            else:
                assert stats["state"] == "running"
                assert not refused
                assert await grinder.submit(square, 7) == 49  # still usable
            await asyncio.wait_for(grinder.stop(), DEADLINE)
            assert (await grinder.astats())["state"] == "stopped"
            monkeypatch.undo()
            await grinder.start()  # a restart works again
            assert await grinder.submit(square, 5) == 25
            assert manager.stats()["leased"] == 0 or grinder.stats()["leases_held"]
        finally:
            monkeypatch.undo()
            await grinder.stop()
            await manager.stop()

    run(main(), timeout=3 * DEADLINE)


def test_a_fault_while_items_wait_for_a_lease_fails_them_all() -> None:
    """The batcher breaks while one batch holds the only lease and more wait."""

    async def main() -> None:
        manager = LeasedExecutorManager(backend="thread", max_pools=1, workers_per_pool=1)
        grinder = WorkGrinder(executor_manager=manager, batch_size_threshold=2,
                              max_wait_seconds=0.005)
        release = threading.Event()
        async with _serving(manager, grinder):
            blocked = [await grinder.enqueue(release.wait, DEADLINE) for _ in range(2)]
            await await_until(lambda: grinder.stats()["running"] == 2)
            waiting = [await grinder.enqueue(square, i) for i in range(5)]
            grinder._breaker.report("its batcher", InjectedFault("injected fault"))
            _, pending = await asyncio.wait(waiting, timeout=DEADLINE)
            assert not pending
            assert all(caused_by_fault(f.exception()) for f in waiting)
            # the running items' callables still run; their futures failed already
            assert all(caused_by_fault(f.exception()) for f in blocked)
            release.set()
            await asyncio.wait_for(grinder.stop(), DEADLINE)
            # the lease goes back once the blocked calls have drained from it
            await await_until(lambda: manager.stats()["leased"] == 0, timeout=DEADLINE)

    run(main(), timeout=3 * DEADLINE)


class _serving:
    """``async with``: start a manager and a grinder, stop both after."""

    def __init__(self, manager: LeasedExecutorManager, grinder: WorkGrinder) -> None:
        self.manager, self.grinder = manager, grinder

    async def __aenter__(self) -> None:
        await self.manager.start()
        await self.grinder.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.grinder.stop()
        await self.manager.stop()


# ------------------------------------------------------------------ manager


def test_a_checker_fault_breaks_the_manager_and_fails_its_waiters(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        manager = LeasedExecutorManager(backend="thread", max_pools=1, workers_per_pool=1)
        await manager.start()
        try:
            held = await manager.acquire(owner="holder")
            waiter = asyncio.ensure_future(manager.acquire(owner="waiter"))
            await await_until(lambda: manager.stats()["waiting"] == 1)
            fault = Fault()
            manager._checker._check = fault.wrap(manager._checker._check)  # type: ignore[method-assign]
            with caplog.at_level(logging.ERROR, logger="neoleasepool.manager"):
                manager.notify_scale_changed()
                with pytest.raises(LeasePoolNotStartedError, match="broken") as raised:
                    await asyncio.wait_for(waiter, DEADLINE)
            assert caused_by_fault(raised.value)
            assert manager.stats()["state"] == "broken"
            assert len([r for r in caplog.records if "manager broken" in r.message]) == 1
            with pytest.raises(LeasePoolNotStartedError, match="broken"):
                await manager.acquire()  # at once, not after a wait
            with pytest.raises(LeasePoolNotStartedError, match="broken"):
                await manager.start()
            # the lease it already granted still works, and goes back
            assert await held.run(square, 3) == 9
            await held.release()
            await asyncio.wait_for(manager.stop(), DEADLINE)
            assert manager.stats()["state"] == "stopped"
            await manager.start()  # a fresh checker
            async with await manager.acquire() as lease:
                assert await lease.run(square, 4) == 16
        finally:
            await manager.stop()

    run(main(), timeout=3 * DEADLINE)


def test_a_pool_the_backend_cannot_build_fails_the_waiter_not_the_manager(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        manager = LeasedExecutorManager(
            backend="thread", max_pools=1, workers_per_pool=1, default_lease_seconds=0.2,
            lease_grace_seconds=0.0,
        )
        await manager.start()
        try:
            await manager.acquire(owner="overstays")  # revoked at its hard expiry
            waiter = asyncio.ensure_future(manager.acquire(owner="waiter"))
            await await_until(lambda: manager.stats()["waiting"] == 1)
            session = manager._pools.session
            assert session is not None
            fault = Fault()
            original = session.create
            session.create = fault.wrap(original)  # type: ignore[method-assign]
            with (
                caplog.at_level(logging.WARNING, logger="neoleasepool.manager"),
                pytest.raises(InjectedFault),
            ):
                await asyncio.wait_for(waiter, DEADLINE)
            assert manager.stats()["state"] == "running"
            failures = [r for r in caplog.records if "pool creation failed" in r.message]
            assert len(failures) == 1
            session.create = original  # type: ignore[method-assign]
            async with await manager.acquire(timeout=DEADLINE) as lease:
                assert await lease.run(square, 5) == 25
        finally:
            await manager.stop()

    run(main(), timeout=3 * DEADLINE)


def boom() -> None:
    raise ValueError("the call failed")


def test_a_done_callback_fault_never_keeps_a_lease_from_draining() -> None:
    async def main() -> None:
        manager = LeasedExecutorManager(backend="thread", max_pools=1, workers_per_pool=1)
        await manager.start()
        try:
            session = manager._pools.session
            assert session is not None
            session.is_broken = Fault().wrap(session.is_broken)  # type: ignore[method-assign]
            lease = await manager.acquire()
            future = lease.executor.submit(boom)
            await lease.release()  # draining while the failed call's callback raises
            with pytest.raises(ValueError):
                await asyncio.wrap_future(future)
            await await_until(lambda: manager.stats()["leased"] == 0, timeout=DEADLINE)
            async with await manager.acquire(timeout=DEADLINE) as again:
                assert await again.run(square, 6) == 36
        finally:
            await asyncio.wait_for(manager.stop(), DEADLINE)

    run(main(), timeout=3 * DEADLINE)


def test_a_backend_shutdown_fault_is_logged_and_the_stop_returns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        manager = LeasedExecutorManager(backend="thread", max_pools=2, workers_per_pool=1)
        await manager.start()
        session = manager._pools.session
        assert session is not None
        refused: list[Any] = []
        original = session.shutdown

        def failing_shutdown(executor: Any, **kwargs: Any) -> None:
            refused.append(executor)
            raise InjectedFault("injected fault")

        session.shutdown = failing_shutdown  # type: ignore[method-assign]
        async with await manager.acquire() as lease:
            assert await lease.run(square, 2) == 4
        with caplog.at_level(logging.WARNING, logger="neoleasepool.manager"):
            await asyncio.wait_for(manager.stop(), DEADLINE)
        assert refused
        assert manager.stats()["state"] == "stopped"
        assert len([r for r in caplog.records if "pool shutdown failed" in r.message]) == len(
            refused
        )
        for executor in refused:  # what the faulty shutdown left running
            original(executor, cancel_futures=True)

    run(main(), timeout=3 * DEADLINE)


# -------------------------------------------------------------- supervision


@pytest.fixture
def sup() -> Iterator[TaskSupervisor]:
    with started_supervisor("faults", max_threads=4, stop_wait=DEADLINE) as supervisor:
        supervisor.create_aloop("faults", default=True)
        yield supervisor


def test_a_worker_whose_own_loop_fails_stops_visibly(
    sup: TaskSupervisor, caplog: pytest.LogCaptureFixture
) -> None:
    ran = threading.Event()

    class Ticker(BackgroundWorker):
        def run(self, **kwargs: Any) -> None:
            ran.set()

    worker = Ticker(name="ticker", supervisor=sup)
    fault = Fault(after=1)  # its first run goes through; the loop fails after it
    worker._call_sync = fault.wrap(worker._call_sync)  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR):
        worker.start()
        wait_until(lambda: not worker.is_active(), timeout=DEADLINE)
    assert ran.is_set() and fault.hits == 1
    assert worker.stats()["state"] == "broken"
    assert len([r for r in caplog.records if "worker loop crashed" in r.message]) == 1
    worker.stop()  # returns at once: the loop has ended
    del worker._call_sync
    ran.clear()
    worker.start()  # a restart works again
    assert ran.wait(DEADLINE)
    assert worker.stats()["state"] == "running"
    worker.stop()


def test_a_job_whose_timer_fails_ends_broken_and_the_others_go_on(
    sup: TaskSupervisor, caplog: pytest.LogCaptureFixture
) -> None:
    scheduler = sup.create_async_job_scheduler("jobs", default=True)
    ran = threading.Event()
    other = threading.Event()

    async def target() -> None:
        ran.set()

    async def other_target() -> None:
        other.set()

    with caplog.at_level(logging.ERROR):
        job = sup.create_async_job(target=target, interval=0.01)
        job.next_due = Fault().wrap(job.next_due)  # type: ignore[method-assign]
        wait_until(lambda: job.stats()["state"] == "broken", timeout=DEADLINE)
        sup.create_async_job(target=other_target, interval=0.01)
        assert other.wait(DEADLINE)
    assert job.stats()["last_error"] == "InjectedFault" and not job.active
    assert len([r for r in caplog.records if "async job timer failed" in r.message]) == 1
    assert scheduler.stats()["state"] == "running"
    scheduler.stop(wait=DEADLINE)
    assert scheduler.stats()["state"] == "stopped"


def test_while_a_lease_is_out_a_failed_build_leaves_the_waiter_for_its_pool() -> None:
    async def main() -> None:
        manager = LeasedExecutorManager(
            backend="thread", max_pools=2, workers_per_pool=1, lease_grace_seconds=0.0
        )
        await manager.start()
        try:
            held = await manager.acquire(owner="holder")
            await manager.acquire(owner="overstays", lease_seconds=0.2)  # revoked soon
            waiter = asyncio.ensure_future(manager.acquire(owner="waiter"))
            await await_until(lambda: manager.stats()["waiting"] == 1)
            session = manager._pools.session
            assert session is not None
            original = session.create
            fault = Fault()
            session.create = fault.wrap(original)  # type: ignore[method-assign]
            # The revocation retires a pool; the pass then fails to build one.
            await await_until(lambda: fault.hits >= 1, timeout=DEADLINE)
            await asyncio.sleep(0)
            assert not waiter.done()  # a lease is out: its pool will come back
            assert manager.stats()["state"] == "running"
            await held.release()
            lease = await asyncio.wait_for(waiter, DEADLINE)
            assert await lease.run(square, 3) == 9
            await lease.release()
            session.create = original  # type: ignore[method-assign]
        finally:
            await manager.stop()

    run(main(), timeout=3 * DEADLINE)
