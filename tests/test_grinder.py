"""WorkGrinder: construction, seed scenarios, batching, concurrency.

Loop ownership and stats are in ``test_grinder_stats.py``; cancellation
and stopping in ``test_grinder_stop.py``; failures, process pools and
chunking in ``test_grinder_failures.py``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import math
import threading
import time
from typing import Any

import pytest

import neoleasepool.grinder.chunks
from neoleasepool import LeasePoolNotStartedError, WorkGrinder
from tests.grinder_work import fail_with, square
from tests.support import Gate, await_until, make_grinder, make_manager, run, serving

manager = functools.partial(make_manager, workers_per_pool=2)
grinder = functools.partial(make_grinder, max_wait_seconds=0.05, batch_size_threshold=4)


# ------------------------------------------------------------- validation

# As leasepool judges: a numeric string is a duration, a whole float is no count.
BAD_DURATIONS = [True, False, math.nan, math.inf, -math.inf, "-1", "nan", "soon", 0, 0.0, -1,
                 -0.5, None]
BAD_COUNTS = [True, False, math.nan, math.inf, -math.inf, "3", 0, -1, -3.0, 3.0, 1.9, 0.5, None]


@pytest.mark.parametrize("argument", ["max_wait_seconds", "lease_seconds"])
@pytest.mark.parametrize("value", BAD_DURATIONS, ids=repr)
def test_bad_durations_are_rejected_with_a_value_error_naming_the_argument(
    argument: str, value: object
) -> None:
    with pytest.raises(ValueError, match=argument):
        WorkGrinder(executor_manager=manager(), **{argument: value})


@pytest.mark.parametrize(
    ("argument", "value"),
    [("batch_size_threshold", v) for v in BAD_COUNTS]
    # chunk_size=None means automatic chunking
    + [("chunk_size", v) for v in BAD_COUNTS if v is not None],
    ids=repr,
)
def test_bad_counts_are_rejected_with_a_value_error_naming_the_argument(
    argument: str, value: object
) -> None:
    with pytest.raises(ValueError, match=argument):
        WorkGrinder(executor_manager=manager(), **{argument: value})


def test_valid_arguments_are_accepted_and_shown_by_stats() -> None:
    g = WorkGrinder(
        executor_manager=manager(),
        max_wait_seconds="0.25",  # read by float(), as leasepool does
        batch_size_threshold=3,
        lease_seconds=7,
        chunk_size=2,
    )
    stats = g.stats()
    assert stats["max_wait_seconds"] == 0.25
    assert stats["batch_size_threshold"] == 3 and type(stats["batch_size_threshold"]) is int
    assert stats["lease_seconds"] == 7.0
    assert stats["chunking"] == 2
    assert WorkGrinder(executor_manager=manager()).stats()["chunking"] == "auto"


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"executor_manager": object()}, "executor_manager"),
        ({"owner_prefix": ""}, "owner_prefix"),
        ({"owner_prefix": 3}, "owner_prefix"),
        ({"logger": "grinder"}, "logger"),
    ],
)
def test_other_bad_arguments_are_rejected_naming_the_argument(
    kwargs: dict[str, Any], argument: str
) -> None:
    kwargs.setdefault("executor_manager", manager())
    with pytest.raises(ValueError, match=argument):
        WorkGrinder(**kwargs)


# ------------------------------------------------------- seed scenarios


def test_submit_returns_each_callers_result() -> None:
    async def main() -> None:
        mgr = manager(workers_per_pool=4)
        g = grinder(mgr, batch_size_threshold=10, max_wait_seconds=1.0)
        await mgr.start()
        await g.start()
        try:
            results = await asyncio.gather(
                *(g.submit(square, i, owner=f"item-{i}") for i in range(20))
            )
            assert results == [i * i for i in range(20)]
            assert await g.submit(pow, 2, exp=5) == 32  # keyword arguments reach fn
            stats = g.stats()
            assert stats["items_completed"] == 21 and stats["pending"] == 0
        finally:
            await g.stop(cancel_pending=True)
            await mgr.stop()

    run(main())


def test_enqueue_returns_a_future_at_once_and_results_arrive_later() -> None:
    async def main() -> None:
        mgr = manager()
        g = grinder(mgr, batch_size_threshold=5, max_wait_seconds=30.0)
        await mgr.start()
        await g.start()
        try:
            futures = [await g.enqueue(str, i, owner=f"format-{i}") for i in range(4)]
            assert all(isinstance(f, asyncio.Future) for f in futures)
            assert not any(f.done() for f in futures)
            assert g.stats()["pending"] == 4  # below the threshold, far from the deadline
            futures.append(await g.enqueue(str, 4))  # the fifth item forms the batch
            assert await asyncio.gather(*futures) == ["0", "1", "2", "3", "4"]
            assert g.stats()["pending"] == 0
        finally:
            await g.stop(cancel_pending=True)
            await mgr.stop()

    run(main())


def test_submit_from_thread_returns_a_concurrent_future_with_the_result() -> None:
    async def main() -> None:
        mgr = manager()
        g = grinder(mgr, batch_size_threshold=1)
        async with serving(mgr, g):
            answers: list[object] = []

            def from_thread() -> None:
                future = g.submit_from_thread(square, 12, owner="external-thread")
                answers.append(type(future).__mro__)
                answers.append(future.result(timeout=10))
                failing = g.submit_from_thread(fail_with, "thread-side")
                answers.append(failing.exception(timeout=10))
                answers.append(g.stats_from_thread(timeout=10)["items_completed"])

            await asyncio.to_thread(from_thread)
            assert concurrent.futures.Future in answers[0]  # type: ignore[operator]
            assert answers[1] == 144
            assert isinstance(answers[2], KeyError) and "thread-side" in str(answers[2])
            assert answers[3] == 1

    run(main())


def test_a_raising_callable_fails_only_its_own_caller() -> None:
    async def main() -> None:
        mgr = manager()
        g = grinder(mgr, batch_size_threshold=4, chunk_size=4)  # all four in one call
        async with serving(mgr, g):
            results = await asyncio.gather(
                g.submit(square, 2),
                g.submit(fail_with, "bad item"),
                g.submit(square, 3),
                g.submit(fail_with, "other bad item"),
                return_exceptions=True,
            )
            assert results[0] == 4 and results[2] == 9
            assert isinstance(results[1], KeyError) and "'bad item'" in str(results[1])
            assert isinstance(results[3], KeyError) and "other bad item" in str(results[3])
            stats = g.stats()
            assert (stats["items_completed"], stats["items_failed"]) == (2, 2)

    run(main())


def test_submit_before_start_and_after_stop_raises_runtime_error() -> None:
    async def main() -> None:
        mgr = manager()
        g = grinder(mgr)
        with pytest.raises(RuntimeError, match="not started"):
            await g.submit(square, 1)
        with pytest.raises(LeasePoolNotStartedError):
            await g.enqueue(square, 1)
        with pytest.raises(LeasePoolNotStartedError, match="manager"):
            await g.start()  # the manager is not started yet
        await mgr.start()
        await g.start()
        await g.stop()
        with pytest.raises(RuntimeError, match="not started"):
            await g.submit(square, 1)
        with pytest.raises(RuntimeError):
            await asyncio.to_thread(g.submit_from_thread, square, 1)
        await mgr.stop()

    run(main())


def test_a_stopped_grinder_can_start_again() -> None:
    async def main() -> None:
        mgr = manager()
        g = grinder(mgr, batch_size_threshold=1)
        async with serving(mgr):
            try:
                await g.start()
                assert await g.submit(square, 3) == 9
                await g.stop()
                await g.start()
                assert await g.submit(square, 4) == 16
                assert g.stats()["items_completed"] == 2
            finally:
                await g.stop()

    run(main())


# --------------------------------------------------------------- batching


def test_a_batch_starts_when_pending_work_reaches_the_threshold() -> None:
    async def main() -> None:
        mgr = manager()
        g = grinder(mgr, batch_size_threshold=3, max_wait_seconds=60.0)
        await mgr.start()
        await g.start()
        try:
            first = [await g.enqueue(square, i) for i in range(2)]
            await asyncio.sleep(0.1)  # give a (wrong) early batch the chance to run
            assert not any(f.done() for f in first)
            assert g.stats()["pending"] == 2 and g.stats()["batches_run"] == 0
            third = await g.enqueue(square, 2)
            assert await asyncio.wait_for(asyncio.gather(*first, third), 10) == [0, 1, 4]
            assert g.stats()["batches_run"] == 1
        finally:
            await g.stop(cancel_pending=True)
            await mgr.stop()

    run(main())


def test_a_lone_item_runs_soon_after_max_wait_seconds() -> None:
    async def main() -> None:
        mgr = manager()
        g = grinder(mgr, batch_size_threshold=100, max_wait_seconds=0.2)
        async with serving(mgr, g):
            ran_at: list[float] = []
            begin = time.monotonic()
            future = await g.enqueue(lambda: ran_at.append(time.monotonic()))
            await asyncio.wait_for(future, 10)
            waited = ran_at[0] - begin
            assert waited >= 0.2  # not before the deadline
            assert waited < 2.0  # and not a long poll period after it (generous bound)
            # A second lone item gets a fresh deadline of its own.
            begin = time.monotonic()
            await asyncio.wait_for(g.submit(lambda: ran_at.append(time.monotonic())), 10)
            assert 0.2 <= ran_at[1] - begin < 2.0

    run(main())


def test_a_batch_holds_at_most_threshold_items(monkeypatch: pytest.MonkeyPatch) -> None:
    # With chunks larger than any batch, each batch is one run_items call.
    batch_sizes: list[int] = []
    original = neoleasepool.grinder.chunks.run_items

    def recording_run_items(items: Any) -> float:
        batch_sizes.append(len(items))
        return original(items)

    monkeypatch.setattr(neoleasepool.grinder.chunks, "run_items", recording_run_items)

    async def main() -> None:
        mgr = manager(workers_per_pool=1)
        g = grinder(mgr, batch_size_threshold=3, max_wait_seconds=0.05, chunk_size=100)
        async with serving(mgr, g):
            try:
                gate = Gate()
                blocker = await g.enqueue(gate)
                await gate.wait_started()  # the only pool is busy with a batch of one
                backlog = [await g.enqueue(square, i) for i in range(10)]
                gate.opened.set()
                assert await asyncio.wait_for(asyncio.gather(*backlog), 10) == [
                    i * i for i in range(10)
                ]
                await blocker
                # The backlog of 10 became several batches of at most 3 items.
                assert batch_sizes[0] == 1 and sum(batch_sizes) == 11
                assert max(batch_sizes) == 3 and len(batch_sizes) >= 5
                assert g.stats()["batches_run"] == len(batch_sizes)
            finally:
                gate.opened.set()

    run(main())


def test_batches_run_concurrently_each_under_its_own_lease() -> None:
    async def main() -> None:
        mgr = manager(max_pools=3, min_pools=1, workers_per_pool=1)
        g = grinder(mgr, batch_size_threshold=1, max_wait_seconds=60.0)
        await mgr.start()
        await g.start()
        barrier = threading.Barrier(3, timeout=20)
        release = threading.Event()

        def meet() -> int:
            # Each item waits for the other two: all three get past the
            # barrier only if three batches run at once, on three pools of
            # one worker each.  Then they hold their leases until released.
            index = barrier.wait()
            assert release.wait(20)
            return index

        try:
            futures = [await g.enqueue(meet) for _ in range(3)]
            await await_until(lambda: barrier.n_waiting == 0 and g.stats()["leases_held"] == 3)
            assert mgr.stats()["leased"] == 3
            owners = {lease["owner"] for lease in mgr.stats()["leases"]}
            assert len(owners) == 3 and all(o.startswith("work-grinder-") for o in owners)
            release.set()
            assert sorted(await asyncio.wait_for(asyncio.gather(*futures), 30)) == [0, 1, 2]
            assert g.stats()["leases_acquired"] >= 3
        finally:
            release.set()
            barrier.abort()
            await g.stop(cancel_pending=True)
            await mgr.stop()

    run(main())


def test_the_grinder_keeps_forming_batches_while_earlier_ones_run() -> None:
    async def main() -> None:
        mgr = manager(max_pools=2, workers_per_pool=1)
        g = grinder(mgr, batch_size_threshold=1, max_wait_seconds=60.0)
        async with serving(mgr, g):
            gate = Gate()
            try:
                blocked = await g.enqueue(gate)
                await gate.wait_started()
                # The first batch is still running; the next one runs on the other pool.
                assert await asyncio.wait_for(g.submit(square, 5), 10) == 25
                assert not blocked.done()
                gate.opened.set()
                assert await blocked == "gate"
            finally:
                gate.opened.set()

    run(main())


def test_a_lease_takes_the_next_batch_while_its_last_one_still_runs() -> None:
    async def main() -> None:
        # One pool of two workers: the next batch can only run on the lease
        # that still runs the gated batch, on its free worker.
        mgr = manager(max_pools=1, workers_per_pool=2)
        g = grinder(mgr, batch_size_threshold=1, max_wait_seconds=60.0)
        async with serving(mgr, g):
            gate = Gate()
            try:
                # Three one-item batches ready at once (enqueue does not yield).
                blocked = await g.enqueue(gate)
                later = [await g.enqueue(square, 6), await g.enqueue(square, 7)]
                await gate.wait_started()
                assert await asyncio.wait_for(asyncio.gather(*later), 10) == [36, 49]
                stats = g.stats()
                assert not blocked.done()
                assert stats["leases_held"] == 1 and stats["leases_acquired"] == 1
                assert stats["batches_in_flight"] == 1  # the gated one
                gate.opened.set()
                assert await blocked == "gate"
                await await_until(lambda: g.stats()["batches_in_flight"] == 0)
            finally:
                gate.opened.set()

    run(main())


def test_each_future_resolves_when_its_own_item_finishes() -> None:
    async def main() -> None:
        mgr = manager(workers_per_pool=2)
        g = grinder(mgr, batch_size_threshold=2, max_wait_seconds=60.0)
        async with serving(mgr, g):
            gate = Gate()
            try:
                blocked = await g.enqueue(gate)
                fast = await g.enqueue(square, 6)  # same batch as the blocked item
                assert await asyncio.wait_for(fast, 10) == 36
                assert not blocked.done() and gate.started.is_set()
                assert g.stats()["batches_run"] == 1
            finally:
                gate.opened.set()

    run(main())
