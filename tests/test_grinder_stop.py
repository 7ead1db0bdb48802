"""WorkGrinder: cancellation of queued work, and stopping (drain or cancel)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from pathlib import Path
from typing import Any

import pytest

from neoleasepool import LeasePoolNotStartedError
from tests.grinder_work import (
    Counter,
    EndCounter,
    collect_loop_errors,
    fail_with,
    square,
    wait_for_file,
)
from tests.support import Gate, await_until, outcome, run, serving, wait_until
from tests.support import make_grinder as grinder
from tests.support import make_manager as manager

BACKENDS = ["thread", "process"]


# ----------------------------------------------------------- cancellation


def test_a_future_cancelled_while_pending_leaves_the_queue_at_once() -> None:
    async def main() -> None:
        mgr = manager()
        g = grinder(mgr)
        async with serving(mgr, g):
            counter = Counter()
            futures = [await g.enqueue(counter, i) for i in range(6)]
            assert g.stats()["pending"] == 6
            futures[0].cancel()  # the oldest
            futures[3].cancel()
            stats = g.stats()  # exact at once, without yielding to the loop
            assert stats["pending"] == 4 and stats["items_cancelled"] == 2
            futures[3].cancel()  # cancelling twice counts once
            assert g.stats()["items_cancelled"] == 2
            await g.stop()  # drains the rest
            assert [outcome(f) for f in futures] == ["cancelled", 1, 2, "cancelled", 4, 5]
            assert counter.calls == 4  # the cancelled items never ran
            assert g.stats()["items_completed"] == 4

    run(main())


def test_cancelling_every_queued_item_empties_the_queue() -> None:
    async def main() -> None:
        mgr = manager()
        g = grinder(mgr)
        async with serving(mgr, g):
            counter = Counter()
            futures = [await g.enqueue(counter) for _ in range(1000)]
            for f in reversed(futures):
                f.cancel()
            stats = g.stats()
            assert stats["pending"] == 0 and stats["oldest_wait_seconds"] == 0.0
            assert stats["items_cancelled"] == 1000
            # The grinder still works afterwards.
            later = await g.enqueue(square, 7)
            assert g.stats()["pending"] == 1
            await g.stop()
            assert later.result() == 49
        assert counter.calls == 0

    run(main())


def test_cancelling_a_submit_call_removes_its_item() -> None:
    async def main() -> None:
        mgr = manager()
        g = grinder(mgr)
        async with serving(mgr, g):
            counter = Counter()
            task = asyncio.create_task(g.submit(counter, 1))
            await await_until(lambda: g.stats()["pending"] == 1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert g.stats()["pending"] == 0
        assert counter.calls == 0

    run(main())


def test_an_item_cancelled_after_its_batch_formed_never_runs() -> None:
    async def main() -> None:
        mgr = manager(workers_per_pool=1)
        g = grinder(mgr, batch_size_threshold=2)
        async with serving(mgr, g):
            gate, counter = Gate(), Counter()
            try:
                blocked = await g.enqueue(gate)
                victim = await g.enqueue(counter, "ran")  # same batch, behind the gate
                await gate.wait_started()
                assert g.stats()["running"] == 2
                victim.cancel()
                assert g.stats()["running"] == 1 and g.stats()["items_cancelled"] == 1
                gate.opened.set()
                assert await blocked == "gate"
                await g.stop()
                assert victim.cancelled()
                assert counter.calls == 0
            finally:
                gate.opened.set()

    run(main())


def test_a_submit_from_thread_future_cancelled_from_its_thread_never_runs() -> None:
    async def main() -> None:
        mgr = manager()
        g = grinder(mgr)
        async with serving(mgr, g):
            counter = Counter()

            def from_thread() -> tuple[bool, int, int]:
                keep = g.submit_from_thread(counter, "kept")
                victim = g.submit_from_thread(counter, "victim")
                wait_until(lambda: g.stats_from_thread(timeout=10)["pending"] == 2)
                cancelled = victim.cancel()
                stats = g.stats_from_thread(timeout=10)  # the cancel hop ran before it
                keep.cancel()
                return cancelled, stats["pending"], stats["items_cancelled"]

            cancelled, pending, items_cancelled = await asyncio.to_thread(from_thread)
            assert cancelled and pending == 1 and items_cancelled == 1
            await await_until(lambda: g.stats()["pending"] == 0)
            assert g.stats()["items_cancelled"] == 2
        assert counter.calls == 0

    run(main())


def test_a_thread_future_cancelled_before_it_reaches_the_queue_keeps_counts_exact() -> None:
    async def main() -> None:
        mgr = manager()
        g = grinder(mgr)
        async with serving(mgr, g):
            counter = Counter()
            futures: list[concurrent.futures.Future[Any]] = []
            # Submit from a thread while the loop is blocked, so the items
            # are still in the grinder's inbox when the loop cancels one.
            thread = threading.Thread(
                target=lambda: futures.extend(g.submit_from_thread(counter) for _ in range(3))
            )
            thread.start()
            thread.join()
            assert futures[1].cancel()  # on the loop thread, before the inbox drains
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            stats = g.stats()
            assert stats["pending"] == 2
            assert stats["items_cancelled"] == 1
            await g.stop()
            assert [outcome(f) for f in futures] == [None, "cancelled", None]
            stats = g.stats()
            assert stats["pending"] == 0 and counter.calls == 2
            assert stats["items_completed"] + stats["items_cancelled"] == 3

    run(main())


# ---------------------------------------------------------------- stopping


@pytest.mark.parametrize("backend", BACKENDS)
def test_stop_drains_queued_work_by_default(backend: str) -> None:
    async def main() -> None:
        mgr = manager(backend=backend)
        g = grinder(mgr, batch_size_threshold=4)
        async with serving(mgr, g):
            futures = [await g.enqueue(square, i) for i in range(10)]
            assert g.stats()["pending"] == 10  # enqueue does not yield to the batcher
            await g.stop()
            assert [f.result() for f in futures] == [i * i for i in range(10)]
            stats = g.stats()
            assert stats["items_completed"] == 10 and stats["pending"] == 0
            with pytest.raises(LeasePoolNotStartedError):
                await g.enqueue(square, 1)

    run(main())


def test_stop_cancel_pending_cancels_queued_work() -> None:
    async def main() -> None:
        mgr = manager()
        g = grinder(mgr)
        async with serving(mgr, g):
            counter = Counter()
            futures = [await g.enqueue(counter, i) for i in range(5)]
            thread_futures = await asyncio.to_thread(
                lambda: [g.submit_from_thread(counter, i) for i in range(3)]
            )
            await g.stop(cancel_pending=True)
            assert all(f.cancelled() for f in futures)
            assert all(f.cancelled() for f in thread_futures)
            stats = g.stats()
            assert stats["items_cancelled"] == 8 and stats["pending"] == 0
        assert counter.calls == 0

    run(main())


@pytest.mark.parametrize("backend", BACKENDS)
def test_stop_cancel_pending_cancels_a_grinder_waiting_for_a_lease(backend: str) -> None:
    async def main() -> None:
        mgr = manager(backend=backend, max_pools=1)
        g = grinder(mgr, batch_size_threshold=1)
        async with serving(mgr, g):
            lease = await mgr.acquire(owner="test-holds-every-pool")
            try:
                future = await g.enqueue(square, 3)
                await await_until(lambda: mgr.stats()["waiting"] == 1)
                await asyncio.wait_for(g.stop(cancel_pending=True), 5)
                assert future.cancelled()
                assert mgr.stats()["waiting"] == 0  # the grinder gave up its place
                assert g.stats()["items_cancelled"] == 1
            finally:
                await lease.release()

    run(main())


def test_stop_cancel_pending_cancels_a_grinder_waiting_for_thread_work() -> None:
    async def main() -> None:
        mgr = manager(workers_per_pool=1)
        g = grinder(mgr, batch_size_threshold=2)
        await mgr.start()
        await g.start()
        gate, counter = Gate(), Counter()
        try:
            running = await g.enqueue(gate)
            behind = await g.enqueue(counter)  # in the batch, behind the gate
            queued = await g.enqueue(counter)  # not in a batch yet
            await gate.wait_started()
            await asyncio.wait_for(g.stop(cancel_pending=True), 5)
            assert running.cancelled() and behind.cancelled() and queued.cancelled()
            stats = g.stats()
            assert stats["items_cancelled"] == 3 and stats["batches_in_flight"] == 0
            assert gate.started.is_set() and not gate.opened.is_set()  # still blocked
        finally:
            gate.opened.set()
            await g.stop()
            await mgr.stop()  # drains the call that was running
        assert counter.calls == 0

    run(main())


def test_stop_cancel_pending_cancels_a_grinder_waiting_for_process_work(
    tmp_path: Path,
) -> None:
    started, release = str(tmp_path / "started"), str(tmp_path / "release")

    async def main() -> None:
        mgr = manager(backend="process", workers_per_pool=1)
        g = grinder(mgr, batch_size_threshold=1)
        async with serving(mgr, g):
            try:
                running = await g.enqueue(wait_for_file, started, release, "value")
                await await_until(lambda: Path(started).exists(), timeout=30)
                await asyncio.wait_for(g.stop(cancel_pending=True), 5)
                assert running.cancelled()
                assert g.stats()["items_cancelled"] == 1
            finally:
                Path(release).touch()

    run(main())


@pytest.mark.parametrize("backend", BACKENDS)
def test_stop_waits_for_in_flight_work_and_delivers_its_result(
    backend: str, tmp_path: Path
) -> None:
    started, release = str(tmp_path / "started"), str(tmp_path / "release")

    async def main() -> None:
        mgr = manager(backend=backend, workers_per_pool=2)
        g = grinder(mgr, batch_size_threshold=2)
        async with serving(mgr, g):
            try:
                in_flight = await g.enqueue(wait_for_file, started, release, "late")
                other = await g.enqueue(square, 4)
                queued = await g.enqueue(square, 5)
                await await_until(lambda: Path(started).exists(), timeout=30)
                stopping = asyncio.create_task(g.stop())
                await await_until(lambda: g.stats()["stopping"])
                assert not stopping.done() and not in_flight.done()
                Path(release).touch()
                await asyncio.wait_for(stopping, 30)
                assert (in_flight.result(), other.result(), queued.result()) == ("late", 16, 25)
                assert g.stats()["items_completed"] == 3
            finally:
                Path(release).touch()

    run(main())


def test_submissions_while_stopping_are_refused() -> None:
    async def main() -> None:
        mgr = manager()
        g = grinder(mgr, batch_size_threshold=1)
        async with serving(mgr, g):
            gate = Gate()
            try:
                blocked = await g.enqueue(gate)
                await gate.wait_started()
                stopping = asyncio.create_task(g.stop())
                await await_until(lambda: g.stats()["stopping"])
                with pytest.raises(LeasePoolNotStartedError, match="stopping"):
                    await g.submit(square, 1)
                with pytest.raises(LeasePoolNotStartedError):
                    await asyncio.to_thread(g.submit_from_thread, square, 1)
                gate.opened.set()
                await asyncio.wait_for(stopping, 10)
                assert blocked.result() == "gate"
            finally:
                gate.opened.set()

    run(main())


def test_every_future_ends_exactly_once() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        errors = collect_loop_errors(loop)
        mgr = manager(max_pools=2, workers_per_pool=2)
        g = grinder(mgr, batch_size_threshold=5, max_wait_seconds=0.01)
        async with serving(mgr, g):
            ends = EndCounter()
            gate = Gate()
            try:
                futures: list[Any] = [ends.watch(await g.enqueue(gate))]
                for i in range(60):
                    fn: Any = fail_with if i % 7 == 0 else square
                    futures.append(ends.watch(await g.enqueue(fn, i if fn is square else "x")))
                thread_futures = await asyncio.to_thread(
                    lambda: [ends.watch(g.submit_from_thread(square, i)) for i in range(40)]
                )
                for f in futures[5::9]:
                    f.cancel()
                for f in thread_futures[::5]:
                    f.cancel()
                await gate.wait_started()
                stop = asyncio.create_task(g.stop(cancel_pending=True))
                await asyncio.sleep(0.01)
                gate.opened.set()
                await asyncio.wait_for(stop, 10)
                await asyncio.wait_for(
                    asyncio.gather(*futures, *map(asyncio.wrap_future, thread_futures),
                                   return_exceptions=True),
                    10,
                )
                await await_until(lambda: len(ends.ends) == 101 and ends.all_ended_once())
                await asyncio.sleep(0.05)  # any second resolution would show up by now
                assert ends.all_ended_once()
                stats = g.stats()
                ended = stats["items_completed"] + stats["items_failed"] + stats["items_cancelled"]
                assert ended == 101 == stats["items_submitted"]
                assert errors == []
            finally:
                gate.opened.set()

    run(main())


def test_a_cancelled_draining_stop_still_ends_every_queued_item() -> None:
    async def main() -> None:
        mgr = manager(workers_per_pool=1)
        g = grinder(mgr, batch_size_threshold=1, max_wait_seconds=0.01)
        gate = Gate()
        async with serving(mgr, g):
            first = await g.enqueue(gate)
            await gate.wait_started()
            queued = [await g.enqueue(square, n) for n in range(3)]
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(g.stop(), 0.1)  # the caller gives up
            gate.opened.set()
            await asyncio.wait_for(g.stop(), 10)  # waits for the drain
            assert await asyncio.wait_for(first, 10) == "gate"
            assert await asyncio.wait_for(asyncio.gather(*queued), 10) == [0, 1, 4]
            assert g.stats()["pending"] == 0

    run(main())
