"""Per-lease locking: submissions on different leases do not wait for each
other, and revocation still ends a lease's work exactly as before.

The pools here are :class:`SubmitGateExecutor` thread pools whose
``submit`` can be held *inside* the executor (before the call is queued),
as a slow or contended ``executor.submit`` would be.  While one lease's
submit is held there, another lease's submit must go through: with one
manager-wide lock held across ``executor.submit`` it could not.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

import pytest

from neoleasepool import LeasedExecutorManager, LeaseExpiredError, LeaseState, register_backend
from neoleasepool.backends import PoolSpec
from tests.support import Gate, await_until, outcome, run, serving
from tests.workfns import square

#: Far longer than a submit takes on any machine; only a lock held by the
#: other lease's submit can make a test wait this long.
DEADLINE = 10.0


def hold_in_submit() -> str:
    """A marker callable: :class:`SubmitGateExecutor` holds its submit."""
    return "held"


class SubmitGateExecutor(ThreadPoolExecutor):
    """A thread pool whose ``submit(hold_in_submit)`` waits for ``opened``
    inside the executor, after setting ``entered``."""

    entered = threading.Event()
    opened = threading.Event()

    def __init__(self, spec: PoolSpec) -> None:
        super().__init__(spec.workers, thread_name_prefix=spec.name)

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        if fn is hold_in_submit:
            SubmitGateExecutor.entered.set()
            if not SubmitGateExecutor.opened.wait(30):
                raise AssertionError("the submit gate never opened")
        return super().submit(fn, *args, **kwargs)


register_backend("tests-submit-gate", SubmitGateExecutor, replace=True)


class CompletesEarlierInSubmit(Executor):
    """Runs each call during the *next* submit, on the submitting thread, as
    an executor that sends queued calls from ``submit`` may (the Dask
    backend does): the earlier future's done-callbacks then run inside
    ``submit``, on a thread that holds its lease's lock."""

    def __init__(self, spec: PoolSpec) -> None:
        self._lock = threading.Lock()
        self._queued: list[tuple[Future[Any], Any, tuple[Any, ...]]] = []

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            earlier, self._queued = self._queued, [(future, fn, args)]
        self._run(earlier)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            left, self._queued = self._queued, []
        if cancel_futures:
            for future, _, _ in left:
                future.cancel()
        self._run(left)

    @staticmethod
    def _run(calls: list[tuple[Future[Any], Any, tuple[Any, ...]]]) -> None:
        for future, fn, args in calls:
            if future.set_running_or_notify_cancel():
                future.set_result(fn(*args))


register_backend("tests-completes-in-submit", CompletesEarlierInSubmit, replace=True)


@pytest.fixture
def submit_gate() -> Any:
    SubmitGateExecutor.entered.clear()
    SubmitGateExecutor.opened.clear()
    yield SubmitGateExecutor
    SubmitGateExecutor.opened.set()  # never leave a submitter stuck


def test_a_submit_held_inside_one_leases_executor_does_not_block_another_lease(
    submit_gate: type[SubmitGateExecutor],
) -> None:
    async def main() -> None:
        manager = LeasedExecutorManager(
            backend="tests-submit-gate", max_pools=2, min_pools=2, workers_per_pool=1
        )
        async with serving(manager):
            held_lease = await manager.acquire(owner="held")
            free_lease = await manager.acquire(owner="free")

            def contend() -> tuple[bool, bool, list[int], list[Future[Any]]]:
                # Runs in a plain thread, so that it can open the gate however
                # long the loop or the submitters are kept waiting.
                held: list[Future[Any]] = []
                results: list[int] = []
                free_done = threading.Event()

                def submit_on_free_lease() -> None:
                    results.append(free_lease.executor.submit(square, 7).result(DEADLINE))
                    free_done.set()

                holder = threading.Thread(
                    target=lambda: held.append(held_lease.executor.submit(hold_in_submit)),
                    name="held-submitter",
                )
                free = threading.Thread(target=submit_on_free_lease, name="free-submitter")
                holder.start()
                try:
                    assert submit_gate.entered.wait(DEADLINE), "the held submit never began"
                    # The held submit is inside its executor now.  A submit on
                    # the other lease, from another thread, must not wait for it.
                    free.start()
                    went_through = free_done.wait(DEADLINE)
                    still_held = not held
                finally:
                    submit_gate.opened.set()
                    holder.join(DEADLINE)
                    if free.ident is not None:
                        free.join(DEADLINE)
                return went_through, still_held, results, held

            went_through, still_held, results, held = await asyncio.to_thread(contend)
            assert went_through, "a submit on one lease waited for another lease's submit"
            assert still_held, "the held submit returned before its gate opened"
            assert results == [49]
            assert await asyncio.wrap_future(held[0]) == "held"
            await held_lease.release()
            await free_lease.release()

    run(main())


def test_submits_from_many_threads_on_many_leases_all_count_as_pending() -> None:
    # Every future a submit returns is pending on its lease until it ends:
    # a release while they run drains, and the pools all come back.
    async def main() -> None:
        manager = LeasedExecutorManager(max_pools=4, min_pools=4, workers_per_pool=2)
        gate = threading.Event()
        async with serving(manager):
            leases = [await manager.acquire(owner=f"l{i}") for i in range(4)]
            futures: list[Future[Any]] = []
            lock = threading.Lock()

            def submit_many(lease_index: int) -> None:
                executor = leases[lease_index].executor
                for _ in range(50):
                    future = executor.submit(gate.wait, DEADLINE)
                    with lock:
                        futures.append(future)

            threads = [
                threading.Thread(target=submit_many, args=(i % 4,)) for i in range(8)
            ]
            try:
                for thread in threads:
                    thread.start()
                for thread in threads:
                    await asyncio.to_thread(thread.join, DEADLINE)
                assert len(futures) == 400
                assert sum(entry["pending"] for entry in manager.stats()["leases"]) == 400
                for lease in leases:
                    await lease.release()
                    assert lease.state is LeaseState.DRAINING
            finally:
                gate.set()
            await asyncio.wait([asyncio.wrap_future(f) for f in futures], timeout=DEADLINE)
            assert all(f.result() is True for f in futures)
            await await_until(lambda: manager.available_count == 4, timeout=DEADLINE)
            assert manager.stats()["leases_released"] == 4

    run(main())


def test_revocation_cancels_queued_work_and_fails_its_run_as_before() -> None:
    # One worker: the first call runs (and is left to finish: threads cannot
    # be killed), the second is still queued when the lease is revoked and
    # is cancelled; its awaiting run() sees LeaseExpiredError.  Another
    # lease's work is not touched.
    async def main() -> None:
        manager = LeasedExecutorManager(
            max_pools=2, min_pools=2, workers_per_pool=1, lease_grace_seconds=0.1,
            check_interval=120.0,
        )
        running, other = Gate("running"), Gate("other")
        try:
            async with serving(manager):
                doomed = await manager.acquire(lease_seconds=0.3, owner="doomed")
                bystander = await manager.acquire(lease_seconds=60.0, owner="bystander")
                first = doomed.executor.submit(running)
                queued = asyncio.ensure_future(doomed.run(square, 3))
                kept = bystander.executor.submit(other)
                await running.wait_started()
                await other.wait_started()
                await await_until(lambda: doomed.state is LeaseState.DONE, timeout=DEADLINE)
                with pytest.raises(LeaseExpiredError, match="before the call ran"):
                    await queued
                with pytest.raises(LeaseExpiredError):
                    doomed.executor.submit(square, 1)
                assert not first.done() and not kept.done()
                assert bystander.active
                assert manager.stats()["leases_revoked"] == 1
                running.opened.set()
                other.opened.set()
                assert await asyncio.wrap_future(first) == "running"
                assert await asyncio.wrap_future(kept) == "other"
                assert await bystander.run(square, 4) == 16
                await bystander.release()
                assert outcome(first) == "running"
        finally:
            running.opened.set()
            other.opened.set()

    run(main())


def test_a_new_worker_thread_is_owned_from_its_first_call() -> None:
    # ThreadPoolExecutor.submit starts a worker and only then lists it in
    # the pool's threads; a call that asks at once must still be told that
    # the manager owns its thread (a blocking stop relies on it).  Each call
    # holds its worker, so every submission starts a new one.
    async def main() -> None:
        manager = LeasedExecutorManager(max_pools=1, workers_per_pool=4)
        hold = threading.Event()

        def owned_then_hold() -> bool:
            owned = manager.owns_thread(threading.current_thread())
            hold.wait(DEADLINE)
            return owned

        async with serving(manager), await manager.acquire() as lease:
            try:
                futures = [lease.executor.submit(owned_then_hold) for _ in range(4)]
            finally:
                hold.set()
            answers = [await asyncio.wrap_future(f) for f in futures]
            assert answers == [True] * 4

    run(main())


def test_work_completed_inside_another_submit_of_the_same_lease_is_accounted() -> None:
    # The done-callback of the first call runs inside the second submit, on
    # the thread that holds the lease lock: the lock must let it in.
    async def main() -> None:
        manager = LeasedExecutorManager(backend="tests-completes-in-submit", max_pools=1)
        async with serving(manager):
            lease = await manager.acquire()

            futures: list[Future[Any]] = []
            submitted = threading.Event()

            def submit_three() -> None:
                futures.extend(lease.executor.submit(square, n) for n in (2, 3, 4))
                submitted.set()

            # A daemon thread: were it to deadlock, the test fails instead of
            # hanging on it.
            threading.Thread(target=submit_three, name="submitter", daemon=True).start()
            assert await asyncio.to_thread(submitted.wait, DEADLINE), "submit deadlocked"
            first, second, third = futures
            assert (first.result(0), second.result(0)) == (4, 9)
            assert not third.done()
            (entry,) = manager.stats()["leases"]
            assert entry["pending"] == 1
            await lease.release()
            assert lease.state is LeaseState.DRAINING
            await manager.stop(drain=False)
            assert outcome(third) == "cancelled"

    run(main())
