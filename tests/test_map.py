"""WorkGrinder.map and the blocking facade's map: bulk inputs as chunks, streamed back."""

from __future__ import annotations

import asyncio
import io
import itertools
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from neoleasepool import (
    LeasedExecutorManager,
    LeasePoolNotStartedError,
    TaskSupervisor,
    WorkGrinder,
)
from neoleasepool.grinder.mapping import MAX_CHUNK, ChunkSizer
from neoleasepool.grinder.progress import ProgressBar, progress_bar
from tests.grinder_work import fail_if_odd, raise_two_arg, square
from tests.support import await_until, run, started_supervisor, wait_until

BACKENDS = ["thread", "process"]


def add(a: int, b: int) -> int:
    return a + b


def unpicklable_if_three(value: int) -> object:
    return threading.Lock() if value == 3 else value


def sleep_and_return(value: float) -> float:
    time.sleep(value)
    return value


class Grinding:
    """``async with Grinding(backend) as g``: a started manager and grinder."""

    def __init__(self, backend: str = "thread", pools: int = 1, workers: int = 2, **kw: Any):
        self.manager = LeasedExecutorManager(
            backend=backend, max_pools=pools, workers_per_pool=workers
        )
        kw.setdefault("batch_size_threshold", 100)
        kw.setdefault("max_wait_seconds", 60.0)  # map chunks must not wait for it
        self.grinder = WorkGrinder(executor_manager=self.manager, **kw)

    async def __aenter__(self) -> WorkGrinder:
        await self.manager.start()
        await self.grinder.start()
        return self.grinder

    async def __aexit__(self, *exc: object) -> None:
        await self.grinder.stop()
        await self.manager.stop()

    async def settled(self) -> None:
        """Every chunk ended and every lease went back."""
        await await_until(
            lambda: self.grinder.stats()["map_items_in_flight"] == 0
            and self.grinder.stats()["running"] == 0
            and self.grinder.stats()["pending"] == 0
            and self.manager.stats()["leased"] == 0,
            timeout=30,
        )


async def collect(stream: AsyncIterator[Any]) -> list[Any]:
    return [value async for value in stream]


# ------------------------------------------------------------------ results


@pytest.mark.parametrize("backend", BACKENDS)
def test_results_come_in_input_order_on_every_backend(backend: str) -> None:
    async def main() -> None:
        async with Grinding(backend) as g:
            assert await collect(g.map(square, range(5000))) == [x * x for x in range(5000)]
            stats = g.stats()
            assert stats["map_items_done"] == 5000 and stats["map_items_in_flight"] == 0
            # a few list operations per input: far fewer grinder items than inputs
            assert stats["items_submitted"] < 200

    run(main())


def test_several_iterables_are_zipped_to_the_shortest() -> None:
    async def main() -> None:
        async with Grinding() as g:
            assert await collect(g.map(add, [1, 2, 3], (10, 20))) == [11, 22]

    run(main())


def test_empty_input_gives_no_results() -> None:
    async def main() -> None:
        async with Grinding() as g:
            assert await collect(g.map(square, [])) == []
            assert g.stats()["items_submitted"] == 0

    run(main())


def test_unordered_results_come_as_chunks_finish() -> None:
    async def main() -> None:
        async with Grinding(workers=2) as g:
            stream = g.map(sleep_and_return, [0.5, 0.0, 0.0, 0.0], chunk_size=1, ordered=False)
            results = await collect(stream)
            assert sorted(results) == [0.0, 0.0, 0.0, 0.5]
            assert results[0] == 0.0 and results[-1] == 0.5  # the slow one came last

    run(main())


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_error_is_raised_at_its_position_and_ends_the_stream(backend: str) -> None:
    async def main() -> None:
        grinding = Grinding(backend)
        async with grinding as g:
            got: list[int] = []
            with pytest.raises(ValueError, match="odd 1"):
                async for value in g.map(fail_if_odd, [0, 2, 4, 1, 6], chunk_size=2):
                    got.append(value)
            assert got == [0, 2, 4]
            await grinding.settled()

    run(main())


@pytest.mark.parametrize("backend", BACKENDS)
def test_return_exceptions_gives_each_error_in_its_place(backend: str) -> None:
    async def main() -> None:
        async with Grinding(backend) as g:
            results = await collect(g.map(fail_if_odd, range(6), return_exceptions=True))
            assert [r for i, r in enumerate(results) if i % 2 == 0] == [0, 2, 4]
            assert all(isinstance(results[i], ValueError) for i in (1, 3, 5))
            assert str(results[3]) == "odd 3"

    run(main())


def test_a_result_that_cannot_travel_fails_only_its_own_input() -> None:
    async def main() -> None:
        async with Grinding("process") as g:
            results = await collect(
                g.map(unpicklable_if_three, range(6), chunk_size=6, return_exceptions=True)
            )
            assert results[:3] == [0, 1, 2] and results[4:] == [4, 5]
            assert isinstance(results[3], TypeError) and "pickled" in str(results[3])

    run(main())


# ------------------------------------------------------------------- inputs


def test_async_iterables_and_a_mix_with_plain_ones() -> None:
    async def numbers(n: int) -> AsyncIterator[int]:
        for i in range(n):
            await asyncio.sleep(0)
            yield i

    async def main() -> None:
        async with Grinding() as g:
            assert await collect(g.map(square, numbers(50))) == [x * x for x in range(50)]
            assert await collect(g.map(add, numbers(5), [10] * 9)) == [10, 11, 12, 13, 14]

    run(main())


def test_an_input_generator_that_raises_midway() -> None:
    def inputs() -> Iterator[int]:
        yield from range(7)
        raise OSError("the source failed")

    async def main() -> None:
        grinding = Grinding()
        async with grinding as g:
            got: list[int] = []
            with pytest.raises(OSError, match="the source failed"):
                async for value in g.map(square, inputs(), chunk_size=3):
                    got.append(value)
            assert got == [x * x for x in range(7)]  # everything before the failure
            await grinding.settled()

    run(main())


def test_inputs_are_pulled_lazily_within_the_window() -> None:
    pulled = itertools.count()

    def inputs() -> Iterator[int]:
        for i in range(1_000_000):
            next(pulled)
            yield i

    async def main() -> None:
        grinding = Grinding()
        async with grinding as g:
            stream = g.map(square, inputs(), chunk_size=10, window=3)
            got = 0
            async for _ in stream:
                got += 1
                if got == 100:
                    break
            await stream.aclose()  # type: ignore[attr-defined]
            # at most the window (3 chunks of 10) beyond what was read, and one chunk being cut
            assert next(pulled) <= 100 + 3 * 10 + 10
            await grinding.settled()

    run(main())


# --------------------------------------------------------- leaving early


def test_leaving_early_cancels_what_is_queued_and_returns_the_leases() -> None:
    calls = itertools.count()

    def counted(value: float) -> float:
        next(calls)
        time.sleep(value)
        return value

    async def main() -> None:
        grinding = Grinding(workers=1)
        async with grinding as g:
            stream = g.map(counted, [0.05] * 200, chunk_size=1, window=4)
            async for _ in stream:
                break
            await stream.aclose()  # type: ignore[attr-defined]
            await grinding.settled()
            ran = next(calls)
            assert ran <= 1 + 4  # the first, and at most the window that was out
            assert g.stats()["items_cancelled"] >= 1

    run(main())


class Blocked:
    """A thread-backend function that returns its input once released."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def __call__(self, value: int) -> int:
        self.release.wait(30)
        return value


def test_cancelling_the_consumer_cancels_the_chunks_and_propagates() -> None:
    blocked = Blocked()

    async def main() -> None:
        grinding = Grinding(workers=1)
        async with grinding as g:
            started = asyncio.Event()

            async def consume() -> list[int]:
                started.set()
                return await collect(g.map(blocked, range(50), chunk_size=1, window=3))

            task = asyncio.ensure_future(consume())
            await started.wait()
            await await_until(lambda: g.stats()["running"] >= 1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            blocked.release.set()  # the one already running on a thread finishes
            await grinding.settled()
            assert g.stats()["items_cancelled"] >= 1

    run(main())


def test_map_refuses_bad_arguments_and_a_stopped_grinder() -> None:
    async def main() -> None:
        grinding = Grinding()
        async with grinding as g:
            with pytest.raises(TypeError, match="callable"):
                g.map(42, [1])  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="iterable"):
                g.map(square, 5)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="at least one"):
                g.map(square)
            with pytest.raises(ValueError, match="chunk_size"):
                g.map(square, [1], chunk_size=0)
            with pytest.raises(ValueError, match="window"):
                g.map(square, [1], window=0)
        with pytest.raises(LeasePoolNotStartedError):
            g.map(square, [1])

    run(main())


# ------------------------------------------------------------------ chunking


def test_chunks_grow_for_tiny_items_and_stay_single_for_slow_ones() -> None:
    sizer = ChunkSizer(None)
    assert sizer.size == 1  # the first result comes back at once
    sizes = []
    for _ in range(12):
        sizer.observe(sizer.size, sizer.size * 1e-7)  # 0.1 us per input
        sizes.append(sizer.size)
    assert sizes == sorted(sizes) and sizes[-1] == MAX_CHUNK
    slow = ChunkSizer(None)
    for _ in range(5):
        slow.observe(slow.size, slow.size * 0.05)  # 50 ms per input
        assert slow.size == 1
    assert ChunkSizer(7).size == 7


def test_map_chunks_each_travel_alone_even_with_a_fixed_grinder_chunk_size() -> None:
    barrier = threading.Barrier(2, timeout=30)

    def meet(value: int) -> int:
        barrier.wait()  # only two chunks running at once get past this
        return value

    async def main() -> None:
        async with Grinding(workers=2, chunk_size=50) as g:
            assert await collect(g.map(meet, range(2), chunk_size=1)) == [0, 1]

    run(main())


def test_first_result_comes_before_the_whole_input_is_done() -> None:
    async def main() -> None:
        async with Grinding(workers=2) as g:
            stream = g.map(square, range(200_000))
            assert await stream.__anext__() == 0  # type: ignore[attr-defined]
            assert g.stats()["map_items_done"] < 200_000
            await stream.aclose()  # type: ignore[attr-defined]

    run(main())


# ------------------------------------------------------------------ progress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_draws_only_on_a_terminal() -> None:
    assert progress_bar(True, 10, io.StringIO()) is None
    assert progress_bar(False, 10, FakeTerminal()) is None
    terminal = FakeTerminal()
    bar = progress_bar(True, 1000, terminal)
    assert isinstance(bar, ProgressBar)
    bar(500)
    bar.finish()
    text = terminal.getvalue()
    assert "500/1,000 50%" in text and text.endswith("\n")
    assert "done" in ProgressBar(None, terminal).line(time.monotonic())


# ------------------------------------------------------------ blocking facade


@pytest.fixture
def sup() -> Iterator[TaskSupervisor]:
    with started_supervisor("map", max_threads=4, stop_wait=30) as supervisor:
        yield supervisor


def test_the_blocking_facade_maps_as_a_plain_iterator(sup: TaskSupervisor) -> None:
    manager = sup.create_lease_manager("m", backend="thread", max_pools=2, workers_per_pool=2)
    grinder = sup.create_work_grinder("g", manager)
    assert list(grinder.map(square, range(3000))) == [x * x for x in range(3000)]
    assert list(grinder.map(add, [1, 2], [3, 4], ordered=False)) in ([4, 6], [6, 4])
    with pytest.raises(ValueError, match="odd 1"):
        list(grinder.map(fail_if_odd, [0, 1, 2]))


def test_breaking_out_of_the_blocking_iterator_cancels_the_rest(sup: TaskSupervisor) -> None:
    manager = sup.create_lease_manager("m", backend="thread", max_pools=1, workers_per_pool=1)
    grinder = sup.create_work_grinder("g", manager)
    calls = itertools.count()

    def counted(value: float) -> float:
        next(calls)
        time.sleep(value)
        return value

    results = grinder.map(counted, [0.05] * 200, chunk_size=1, window=4)
    for _ in results:
        break
    results.close()  # type: ignore[attr-defined]
    wait_until(lambda: grinder.stats()["map_items_in_flight"] == 0)
    wait_until(lambda: manager.stats()["leased"] == 0, timeout=30)
    assert next(calls) <= 1 + 4


def test_the_blocking_map_times_out_as_executor_map_does(sup: TaskSupervisor) -> None:
    manager = sup.create_lease_manager("m", backend="thread", max_pools=1, workers_per_pool=1)
    grinder = sup.create_work_grinder("g", manager)
    results = grinder.map(sleep_and_return, [0.0, 5.0], chunk_size=1, timeout=0.5)
    assert next(results) == 0.0
    with pytest.raises(TimeoutError):
        next(results)
    wait_until(lambda: grinder.stats()["map_items_in_flight"] == 0)


# ------------------------------------------------ what the review found


def test_results_that_cannot_be_unpickled_fail_their_chunk_instead_of_hanging() -> None:
    async def main() -> None:
        async with Grinding("process") as g:
            stream = g.map(raise_two_arg, range(8), chunk_size=2, return_exceptions=True)
            results = await asyncio.wait_for(collect(stream), 30)
            assert results[:2] == [0, 1] and results[4:] == [4, 5, 6, 7]
            assert all(isinstance(r, RuntimeError) for r in results[2:4])
            assert "could not be read" in str(results[2])

    run(main())


def test_a_short_map_never_waits_for_the_batching_deadline() -> None:
    async def main() -> None:
        # A window (26 chunks) above the threshold (20): the chunks left after
        # the first batch used to wait max_wait_seconds (an hour here).
        async with Grinding(pools=3, workers=4, batch_size_threshold=20,
                            max_wait_seconds=3600) as g:
            results = await asyncio.wait_for(collect(g.map(square, range(26))), 30)
            assert results == [x * x for x in range(26)]

    run(main())


class Abort(BaseException):
    """Not an Exception: it must still reach the consumer."""


def test_an_input_that_raises_a_base_exception_is_not_a_silent_end() -> None:
    def inputs() -> Iterator[int]:
        yield from range(4)
        raise Abort("the source aborted")

    async def main() -> None:
        async with Grinding() as g:
            got: list[int] = []
            with pytest.raises(Abort):
                async for value in g.map(square, inputs(), chunk_size=3):
                    got.append(value)
            assert got == [0, 1, 4, 9]

    run(main())


def test_a_map_never_iterated_holds_nothing() -> None:
    async def main() -> None:
        async with Grinding() as g:
            stream = g.map(square, range(1000))
            for _ in range(3):
                await asyncio.sleep(0)
            stats = g.stats()
            assert stats["map_runs"] == 0 and stats["items_submitted"] == 0
            del stream
            # a len() that cannot be taken does not matter without a progress bar
            huge = g.map(square, range(10**20))
            assert await huge.__anext__() == 0  # type: ignore[attr-defined]
            await huge.aclose()  # type: ignore[attr-defined]

    run(main())


def test_a_cancelling_stop_ends_the_map_with_an_error_not_a_cancel() -> None:
    blocked = Blocked()

    async def main() -> None:
        grinding = Grinding(workers=1)
        async with grinding as g:
            async def consume() -> list[int]:
                return await collect(g.map(blocked, range(20), chunk_size=1, window=4))

            task = asyncio.ensure_future(consume())
            await await_until(lambda: g.stats()["running"] >= 1)
            stopping = asyncio.ensure_future(g.stop(cancel_pending=True))
            with pytest.raises(LeasePoolNotStartedError):
                await task
            assert not task.cancelled()
            blocked.release.set()
            await stopping

    run(main())


def test_a_late_fault_of_an_earlier_run_does_not_break_the_next() -> None:
    async def main() -> None:
        async with Grinding() as g:
            earlier = g._breaker
            await g.stop()
            await g.start()
            earlier.report("a callback of the earlier run", RuntimeError("late"))
            await asyncio.sleep(0)
            assert g.stats()["state"] == "running"
            assert await collect(g.map(square, range(3))) == [0, 1, 4]

    run(main())


def test_the_blocking_map_gives_results_already_done_after_its_timeout(
    sup: TaskSupervisor,
) -> None:
    manager = sup.create_lease_manager("m", backend="thread", max_pools=1, workers_per_pool=2)
    grinder = sup.create_work_grinder("g", manager)
    results = grinder.map(square, range(6), chunk_size=6, timeout=0.5)
    first = next(results)
    time.sleep(0.8)  # a slow consumer, past the timeout: the rest is done already
    assert [first, *results] == [x * x for x in range(6)]


def test_stopping_the_grinder_halts_a_map_its_consumer_left_open() -> None:
    async def main() -> None:
        grinding = Grinding()
        async with grinding as g:
            stream = g.map(square, range(1_000_000), chunk_size=10, window=3)
            assert await stream.__anext__() == 0  # type: ignore[attr-defined]
            await g.stop()  # the consumer keeps the stream, unread
            feeders = [t for t in asyncio.all_tasks() if "_feed" in repr(t.get_coro())]
            assert not feeders, "a map's feeder outlived the grinder's stop"
            got = [value async for value in _until_error(stream)]
            assert got[:9] == [x * x for x in range(1, 10)]  # the chunks out were drained
            assert isinstance(got[-1], LeasePoolNotStartedError)  # then said why it ended
            await g.start()

    run(main())


def test_the_blocking_map_left_open_does_not_hang_the_supervisors_stop() -> None:
    with started_supervisor("map-stop", max_threads=4, stop_wait=30) as supervisor:
        manager = supervisor.create_lease_manager("m", backend="thread", max_pools=1)
        grinder = supervisor.create_work_grinder("g", manager)
        results = grinder.map(square, range(1_000_000))
        for value in results:
            if value > 100:
                break  # ``results`` is still referenced: not closed
        never_started = grinder.map(square, range(1_000_000))
        stopped = threading.Event()
        threading.Thread(target=lambda: (supervisor.stop(), stopped.set()), daemon=True).start()
        assert stopped.wait(30), "the supervisor's stop hung on an open map"
        del never_started


async def _until_error(stream: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """The stream's values, then the exception that ended it (if any) as a value."""
    try:
        async for value in stream:
            yield value
    except Exception as exc:
        yield exc
