"""WorkGrinder's direct lane: thread submissions served on a held lease.

While a batch holding items from other threads runs on an in-process
(thread) lease, runners on the lease's worker threads take new thread
submissions straight from the callers (see ``neoleasepool/grinder/handoff.py``).
These tests check that the lane is used, that it gives its lease back, that
it never holds up work that must go through a batch, and that stopping and
cancelling end every item exactly once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import threading
import time
from typing import Any

import pytest

import neoleasepool.grinder.batches
from neoleasepool import LeasePoolNotStartedError, WorkGrinder
from tests.grinder_work import square
from tests.support import Gate, await_until, make_grinder, make_manager, run, serving

manager = functools.partial(make_manager, workers_per_pool=2)
grinder = functools.partial(make_grinder, max_wait_seconds=0.05, batch_size_threshold=4)


def ends(g: WorkGrinder) -> int:
    stats = g.stats()
    return int(stats["items_completed"] + stats["items_failed"] + stats["items_cancelled"])


class Callers:
    """Threads that each submit ``square(n)`` from their thread and wait for
    it, over and over, until stopped; every result is checked."""

    def __init__(self, g: WorkGrinder, threads: int = 4) -> None:
        self.grinder = g
        self.stopped = threading.Event()
        self.calls = 0
        self.wrong: list[Any] = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._call) for _ in range(threads)]

    def _call(self) -> None:
        n = 0
        while not self.stopped.is_set():
            n += 1
            try:
                result = self.grinder.submit_from_thread(square, n).result(30)
            except LeasePoolNotStartedError:
                return  # the grinder is stopping
            with self._lock:
                self.calls += 1
                if result != n * n:
                    self.wrong.append((n, result))

    async def __aenter__(self) -> Callers:
        for thread in self._threads:
            thread.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        # Join off the loop: the callers' last items may need it.
        self.stopped.set()
        for thread in self._threads:
            await asyncio.to_thread(thread.join, 30)
        assert not any(t.is_alive() for t in self._threads), "a caller thread hung"


async def gate_on_the_only_worker(g: WorkGrinder, gate: Gate) -> concurrent.futures.Future[Any]:
    """Run ``gate`` from a thread in a batch of its own on the only worker,
    with the batch's lane runner queued behind it; return its future."""
    first = await asyncio.to_thread(g.submit_from_thread, gate)
    await gate.wait_started()
    await await_until(lambda: g.stats()["lane_runners"] == 1)
    return first


async def gate_in_the_lane(g: WorkGrinder, gate: Gate) -> concurrent.futures.Future[Any]:
    """Get a runner idle on the only worker, then run ``gate`` on it through
    the lane; return its future."""
    assert await asyncio.wrap_future(await asyncio.to_thread(g.submit_from_thread, square, 2)) == 4
    await await_until(lambda: g.stats()["lane_idle"] == 1)
    first = await asyncio.to_thread(g.submit_from_thread, gate)
    await gate.wait_started()
    return first


def offer_from_thread(
    g: WorkGrinder, fn: Any, values: range
) -> list[concurrent.futures.Future[Any]]:
    return [g.submit_from_thread(fn, value) for value in values]


def test_thread_submissions_run_on_the_lane_once_a_batch_holds_a_lease() -> None:
    async def main() -> None:
        mgr = manager()
        g = grinder(mgr)
        async with serving(mgr, g):
            async with Callers(g) as callers:
                await await_until(lambda: callers.calls >= 400, timeout=30)
            stats = g.stats()
            assert callers.wrong == []
            assert stats["items_direct"] > 0, "no thread submission took the lane"
            assert stats["items_submitted"] == callers.calls == ends(g)
            assert stats["batches_run"] < callers.calls / 4, "items ran one batch each"

    run(main())


def test_the_lane_gives_its_lease_back_once_callers_go_quiet() -> None:
    async def main() -> None:
        mgr = manager(max_pools=1)
        g = grinder(mgr)
        async with serving(mgr, g):
            async with Callers(g) as callers:
                await await_until(lambda: g.stats()["items_direct"] > 0, timeout=30)
            await await_until(lambda: g.stats()["lane_runners"] == 0)
            await await_until(lambda: mgr.stats()["leased"] == 0)
            # Nothing is left behind: the next lease is granted at once.
            lease = await asyncio.wait_for(mgr.acquire(owner="after-the-lane"), 10)
            assert await lease.run(square, 5) == 25
            await lease.release()
            assert ends(g) == g.stats()["items_submitted"] == callers.calls

    run(main())


def test_work_that_needs_a_batch_is_not_held_up_by_a_busy_lane() -> None:
    async def main() -> None:
        # One pool: while runners serve the lane, an item queued on the loop
        # can only run once they give the lease back (lease_seconds=60
        # would otherwise let them keep it for 30 s).
        mgr = manager(max_pools=1)
        g = grinder(mgr, lease_seconds=60)
        async with serving(mgr, g):
            async with Callers(g, threads=6):
                await await_until(lambda: g.stats()["items_direct"] > 50, timeout=30)
                started = time.monotonic()
                assert await asyncio.wait_for(g.submit(square, 11), 10) == 121
                waited = time.monotonic() - started
            assert waited < 10

    run(main())


def test_a_draining_stop_ends_every_item_of_threads_using_the_lane() -> None:
    async def main() -> None:
        mgr = manager()
        g = grinder(mgr)
        async with serving(mgr, g):
            async with Callers(g, threads=6) as callers:
                await await_until(lambda: g.stats()["items_direct"] > 50, timeout=30)
                await asyncio.wait_for(g.stop(), 30)
            stats = g.stats()
            assert callers.wrong == []
            assert stats["items_submitted"] == stats["items_completed"] == callers.calls
            assert stats["lane_runners"] == 0

    run(main())


def test_a_cancelling_stop_cancels_an_item_running_in_the_lane(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Runners wait long enough for the test to hand one an item on a loaded machine.
    monkeypatch.setattr(neoleasepool.grinder.batches, "LINGER_SECONDS", 30.0)

    async def main() -> None:
        mgr = manager(workers_per_pool=1)
        g = grinder(mgr, batch_size_threshold=1, max_wait_seconds=60.0)
        gate = Gate()
        async with serving(mgr, g):
            running = await gate_in_the_lane(g, gate)
            await asyncio.wait_for(g.stop(cancel_pending=True), 30)
            assert running.cancelled(), "the running item's result was not discarded"
            gate.opened.set()
            stats = g.stats()
            assert stats["items_submitted"] == 2
            assert (stats["items_completed"], stats["items_cancelled"]) == (1, 1)

    run(main())


def test_items_are_not_left_waiting_behind_a_busy_worker() -> None:
    async def main() -> None:
        # The only worker runs a gated call with the lane's runner queued
        # behind it; a thread's item must take a batch on the second pool.
        mgr = manager(max_pools=2, workers_per_pool=1)
        g = grinder(mgr, batch_size_threshold=1)
        gate = Gate()
        async with serving(mgr, g):
            try:
                first = await gate_on_the_only_worker(g, gate)
                later = await asyncio.to_thread(g.submit_from_thread, square, 9)
                assert await asyncio.wait_for(asyncio.wrap_future(later), 10) == 81
                assert not first.done()
                assert g.stats()["leases_acquired"] == 2  # it took the other pool
            finally:
                gate.opened.set()
            assert await asyncio.wrap_future(first) == "gate"

    run(main())


def test_a_job_that_submits_to_its_own_grinder_and_waits_does_not_deadlock() -> None:
    async def main() -> None:
        mgr = manager(max_pools=2, workers_per_pool=1)
        g = grinder(mgr, batch_size_threshold=1)

        def outer() -> int:
            return int(g.submit_from_thread(square, 10).result(20))

        async with serving(mgr, g):
            for _ in range(3):  # later rounds find the lane open
                future = await asyncio.to_thread(g.submit_from_thread, outer)
                assert await asyncio.wait_for(asyncio.wrap_future(future), 30) == 100

    run(main())


def test_items_queued_while_no_runner_is_idle_go_through_a_batch_exactly_once() -> None:
    async def main() -> None:
        mgr = manager(workers_per_pool=1)
        g = grinder(mgr, batch_size_threshold=1)
        gate = Gate()
        async with serving(mgr, g):
            first = await gate_on_the_only_worker(g, gate)
            waiting = await asyncio.to_thread(offer_from_thread, g, square, range(5))
            gate.opened.set()
            results = [await asyncio.wrap_future(f) for f in waiting]
            assert results == [n * n for n in range(5)]
            assert first.result(0) == "gate"
            await await_until(lambda: ends(g) == 6)
            stats = g.stats()
            assert stats["items_submitted"] == stats["items_completed"] == 6

    run(main())


def test_async_submissions_alone_start_no_runners() -> None:
    async def main() -> None:
        mgr = manager()
        g = grinder(mgr)
        async with serving(mgr, g):
            results = await asyncio.gather(*(g.submit(square, n) for n in range(40)))
            assert results == [n * n for n in range(40)]
            assert g.stats()["items_direct"] == 0
            assert g.stats()["lane_runners"] == 0

    run(main())


def test_the_process_backend_keeps_thread_submissions_on_the_batch_path() -> None:
    async def main() -> None:
        mgr = manager(backend="process", workers_per_pool=1)
        g = grinder(mgr)
        async with serving(mgr, g):
            futures = await asyncio.to_thread(offer_from_thread, g, square, range(40))
            results = [await asyncio.wrap_future(f) for f in futures]
            assert results == [n * n for n in range(40)]
            assert g.stats()["items_direct"] == 0
            assert g.stats()["lane_runners"] == 0

    run(main(), timeout=120)


def test_an_item_waiting_behind_a_busy_runner_takes_another_pool() -> None:
    # The only runner on pool 1 runs a gated item; a tiny item that queued
    # behind it must not wait for the gate while pool 2 is free (and here
    # the gate opens only once the tiny item has its result).
    async def main() -> None:
        mgr = manager(max_pools=2, workers_per_pool=1)
        g = grinder(mgr, batch_size_threshold=1, max_wait_seconds=60.0)
        gate = Gate()
        async with serving(mgr, g):
            try:
                # A runner idle on pool 1, then the gate on it via the hand-off.
                assert await asyncio.wrap_future(
                    await asyncio.to_thread(g.submit_from_thread, square, 2)
                ) == 4
                await await_until(lambda: g.stats()["lane_idle"] == 1)
                gated = await asyncio.to_thread(g.submit_from_thread, gate)
                await gate.wait_started()
                tiny = await asyncio.to_thread(g.submit_from_thread, square, 9)
                assert await asyncio.wait_for(asyncio.wrap_future(tiny), 10) == 81
                assert not gated.done()
            finally:
                gate.opened.set()
            assert await asyncio.wrap_future(gated) == "gate"

    run(main())
