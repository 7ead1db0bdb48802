"""WorkGrinder: failures (callables, submission, crashed workers) and chunking."""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import pytest

import neoleasepool.grinder.chunks
from neoleasepool import (
    LeasePoolNotStartedError,
    PoolSpec,
    register_backend,
)
from neoleasepool.grinder.calls import run_calls
from neoleasepool.leasing.lease import LeasedExecutor
from tests.grinder_work import (
    append_line,
    crash,
    fail_if_odd,
    fail_with,
    make_lock,
    raise_base,
    raise_stop_iteration,
    sleep_then,
    square,
    wait_for_file,
    wait_then,
)
from tests.support import await_until, outcome, run, serving
from tests.support import make_grinder as grinder
from tests.support import make_manager as manager

BACKENDS = ["thread", "process"]


class SubmitSpy:
    """Wraps ``LeasedExecutor.submit``: records chunk sizes, can fail the Nth call."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.fail_on = fail_on
        self.calls = 0
        self.chunks: list[int] = []
        self.lock = threading.Lock()
        self.original = LeasedExecutor.submit

    def install(self, monkeypatch: pytest.MonkeyPatch) -> SubmitSpy:
        spy = self

        def submit(executor: LeasedExecutor, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            with spy.lock:
                spy.calls += 1
                if spy.calls == spy.fail_on:
                    raise OSError("submission refused")
                spy.chunks.append(len(args[0]))
            return spy.original(executor, fn, *args, **kwargs)

        monkeypatch.setattr(LeasedExecutor, "submit", submit)
        return self


# ------------------------------------------------------ failing callables


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("kind", "error"), [("exit", SystemExit), ("interrupt", KeyboardInterrupt)]
)
def test_a_callable_raising_a_base_exception_fails_only_its_own_item(
    backend: str, kind: str, error: type[BaseException]
) -> None:
    async def main() -> None:
        mgr = manager(backend=backend, workers_per_pool=1)
        # One call runs all three; a later lone item runs after 50 ms.
        g = grinder(mgr, batch_size_threshold=3, chunk_size=3, max_wait_seconds=0.05)
        async with serving(mgr, g):
            futures = [
                await g.enqueue(square, 2),
                await g.enqueue(raise_base, kind),
                await g.enqueue(square, 3),
            ]
            await asyncio.wait_for(asyncio.wait(futures), 30)
            assert futures[0].result() == 4 and futures[2].result() == 9
            assert isinstance(futures[1].exception(), error)
            # The worker survived: the pool still runs work.
            assert await asyncio.wait_for(g.submit(square, 5), 30) == 25
            assert mgr.stats()["pools_broken"] == 0

    run(main())


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_callable_raising_stop_iteration_fails_only_its_own_item(backend: str) -> None:
    async def main() -> None:
        mgr = manager(backend=backend)
        g = grinder(mgr, batch_size_threshold=3, chunk_size=3)
        async with serving(mgr, g):
            futures = [
                await g.enqueue(square, 2),
                await g.enqueue(raise_stop_iteration),
                await g.enqueue(square, 3),
            ]
            await asyncio.wait_for(asyncio.wait(futures), 30)
            assert futures[0].result() == 4 and futures[2].result() == 9
            # An asyncio future cannot hold StopIteration; it arrives wrapped.
            failure = futures[1].exception()
            assert isinstance(failure, RuntimeError)
            assert isinstance(failure.__cause__, StopIteration)
            thread_future = await asyncio.to_thread(g.submit_from_thread, raise_stop_iteration)
            await g.stop()  # drains; would hang if a batch never finished
            assert isinstance(thread_future.exception(), StopIteration)

    run(main())


def test_an_unpicklable_result_fails_only_its_own_item_in_a_process_chunk() -> None:
    async def main() -> None:
        mgr = manager(backend="process")
        g = grinder(mgr, batch_size_threshold=3, chunk_size=3)
        async with serving(mgr, g):
            futures = [await g.enqueue(square, 2), await g.enqueue(make_lock),
                       await g.enqueue(square, 3)]
            await asyncio.wait_for(asyncio.wait(futures), 30)
            assert futures[0].result() == 4 and futures[2].result() == 9
            assert isinstance(futures[1].exception(), TypeError)
            assert "pickle" in str(futures[1].exception())

    run(main())


def test_an_unpicklable_callable_fails_only_its_own_item_and_nothing_runs_twice(
    tmp_path: Path,
) -> None:
    log = str(tmp_path / "calls.log")

    async def main() -> None:
        mgr = manager(backend="process")
        g = grinder(mgr, batch_size_threshold=4, chunk_size=4)
        async with serving(mgr, g):
            futures = [
                await g.enqueue(append_line, log, "a"),
                await g.enqueue(lambda: "a lambda cannot reach a worker process"),
                await g.enqueue(append_line, log, "b"),
                await g.enqueue(fail_with, "its own error"),
            ]
            await asyncio.wait_for(asyncio.wait(futures), 30)
            assert futures[0].result() == "a" and futures[2].result() == "b"
            assert isinstance(futures[1].exception(), (AttributeError, TypeError))
            assert isinstance(futures[3].exception(), KeyError)
            assert sorted(Path(log).read_text().split()) == ["a", "b"]

    run(main())


# ---------------------------------------------------- submission failures


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_submission_failure_part_way_fails_only_the_unsubmitted_items(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started, release = str(tmp_path / "started"), str(tmp_path / "release")
    spy = SubmitSpy(fail_on=3).install(monkeypatch)

    async def main() -> None:
        mgr = manager(backend=backend, workers_per_pool=2)
        g = grinder(mgr, batch_size_threshold=4, chunk_size=1)
        async with serving(mgr, g):
            try:
                futures = [
                    await g.enqueue(wait_for_file, started, release, "in flight"),
                    await g.enqueue(fail_with, "its own error"),
                    await g.enqueue(square, 3),  # the third submit raises
                    await g.enqueue(square, 4),
                ]
                with pytest.raises(OSError, match="submission refused"):
                    await asyncio.wait_for(futures[2], 30)
                with pytest.raises(OSError, match="submission refused"):
                    await asyncio.wait_for(futures[3], 30)
                assert not futures[0].done()  # still running
                Path(release).touch()
                assert await asyncio.wait_for(futures[0], 30) == "in flight"
                with pytest.raises(KeyError, match="its own error"):
                    await futures[1]
                # Later batches are submitted normally.
                assert await asyncio.wait_for(
                    asyncio.gather(*[await g.enqueue(square, i) for i in range(4)]), 30
                ) == [0, 1, 4, 9]
                stats = g.stats()
                assert (stats["items_completed"], stats["items_failed"]) == (5, 3)
            finally:
                Path(release).touch()

    run(main())
    assert spy.calls == 3 + 4


class _RefusingExecutor(ThreadPoolExecutor):
    """A thread pool whose second submit raises, as a remote engine might."""

    def __init__(self, max_workers: int) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix="refusing")
        self.submits = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.submits += 1
        if self.submits == 2:
            raise ConnectionError("engine unreachable")
        return super().submit(fn, *args, **kwargs)


def _refusing_factory(spec: PoolSpec) -> Executor:
    return _RefusingExecutor(spec.workers)


register_backend("grinder-test-refusing", _refusing_factory, replace=True)


def test_a_custom_backend_failing_a_submit_fails_only_the_unsubmitted_items() -> None:
    async def main() -> None:
        mgr = manager(backend="grinder-test-refusing", workers_per_pool=2)
        g = grinder(mgr, batch_size_threshold=3, chunk_size=1)
        async with serving(mgr, g):
            futures = [await g.enqueue(fail_if_odd, v) for v in (2, 4, 6)]
            await asyncio.wait_for(asyncio.wait(futures), 30)
            assert futures[0].result() == 2
            for f in futures[1:]:
                assert isinstance(f.exception(), ConnectionError)
            # Out-of-process style execution still captures per-item errors.
            results = await asyncio.gather(
                *(g.submit(fail_if_odd, v) for v in (1, 2, 3)), return_exceptions=True
            )
            assert isinstance(results[0], ValueError) and results[1] == 2
            assert isinstance(results[2], ValueError) and "odd 3" in str(results[2])

    run(main())


def test_work_fails_instead_of_hanging_when_the_manager_stops_first() -> None:
    async def main() -> None:
        mgr = manager()
        g = grinder(mgr, batch_size_threshold=1)
        async with serving(mgr, g):
            assert await g.submit(square, 2) == 4
            await mgr.stop()  # the wrong order: the grinder cannot lease any more
            with pytest.raises(LeasePoolNotStartedError):
                await asyncio.wait_for(g.submit(square, 3), 10)
            assert g.stats()["items_failed"] == 1

    run(main())


# ------------------------------------------------------- crashed workers


@pytest.mark.parametrize(("backend", "broken"), [("process", 0), ("stdlib-process", 1)])
def test_a_process_worker_crash_fails_only_the_broken_pools_items(
    tmp_path: Path, backend: str, broken: int
) -> None:
    """On our pool only the crashed call fails (and the worker is replaced);
    ``ProcessPoolExecutor`` breaks as a whole and the manager replaces it."""
    started, release = str(tmp_path / "started"), str(tmp_path / "release")

    async def main() -> None:
        mgr = manager(backend=backend, max_pools=2, min_pools=2, workers_per_pool=1)
        g = grinder(mgr, batch_size_threshold=2)
        async with serving(mgr, g):
            try:
                # Batch one holds the first pool, blocked until released.
                healthy = [
                    await g.enqueue(wait_for_file, started, release, "survivor"),
                    await g.enqueue(square, 5),
                ]
                await await_until(lambda: Path(started).exists(), timeout=30)
                # Batch two runs on the second pool, whose worker dies.
                crashed = await g.enqueue(crash)
                neighbour = await g.enqueue(square, 6)
                with pytest.raises(BrokenProcessPool):
                    await asyncio.wait_for(crashed, 30)
                await asyncio.wait_for(asyncio.wait([neighbour]), 30)
                assert outcome(neighbour) == 36 or isinstance(
                    neighbour.exception(), BrokenProcessPool
                )
                assert not healthy[0].done()  # the other pool's work is untouched
                Path(release).touch()
                assert await asyncio.wait_for(asyncio.gather(*healthy), 30) == ["survivor", 25]
                # Later batches run on healthy (replacement) pools.
                later = await asyncio.wait_for(
                    asyncio.gather(*[await g.enqueue(square, i) for i in range(6)]), 60
                )
                assert later == [i * i for i in range(6)]
                assert mgr.stats()["pools_broken"] == broken
            finally:
                Path(release).touch()

    run(main())


# --------------------------------------------------------------- chunking


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_fixed_chunk_size_groups_items_and_keeps_their_errors_apart(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = SubmitSpy().install(monkeypatch)

    async def main() -> None:
        mgr = manager(backend=backend, workers_per_pool=2)
        g = grinder(mgr, batch_size_threshold=10, chunk_size=4)
        async with serving(mgr, g):
            results = await asyncio.wait_for(
                asyncio.gather(*(g.submit(fail_if_odd, i) for i in range(10)),
                               return_exceptions=True),
                30,
            )
            for i, result in enumerate(results):
                if i % 2:
                    assert isinstance(result, ValueError) and f"odd {i}" in str(result)
                else:
                    assert result == i
            assert spy.chunks == [4, 4, 2]
            assert g.stats()["chunking"] == 4

    run(main())


def test_in_process_chunks_run_their_items_one_after_another_on_one_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    original = neoleasepool.grinder.chunks.run_items

    def counting_run_items(items: Any) -> float:
        calls.append(len(items))
        return original(items)

    monkeypatch.setattr(neoleasepool.grinder.chunks, "run_items", counting_run_items)

    async def main() -> None:
        mgr = manager(workers_per_pool=2)
        g = grinder(mgr, batch_size_threshold=6, chunk_size=3)
        async with serving(mgr, g):
            idents = await asyncio.wait_for(
                asyncio.gather(*(g.submit(threading.get_ident) for _ in range(6))), 30
            )
            assert calls == [3, 3]
            assert len(set(idents[:3])) == 1 and len(set(idents[3:])) == 1

    run(main())


def test_auto_chunking_groups_tiny_items_once_it_has_measured_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spy = SubmitSpy().install(monkeypatch)

    async def main() -> None:
        mgr = manager(backend="grinder-test-counting", workers_per_pool=2)
        g = grinder(mgr, batch_size_threshold=50, max_wait_seconds=0.01)
        async with serving(mgr, g):
            assert g.stats()["chunking"] == "auto"
            first = await asyncio.gather(*(g.submit(square, i) for i in range(50)))
            assert first == [i * i for i in range(50)]
            assert set(spy.chunks) == {1}  # nothing measured yet: one item per call
            spy.chunks.clear()
            second = await asyncio.gather(*(g.submit(square, i) for i in range(50)))
            assert second == [i * i for i in range(50)]
            # tiny items are now grouped: 50 of them are less work in all
            # than one hand-off is worth splitting, so one call runs them
            assert spy.chunks == [50]
            assert g.stats()["avg_item_seconds"] is not None
            # items with more work in all are spread over both workers (how
            # many per chunk depends on measured durations: test_chunking.py
            # checks the sizes deterministically)
            nap = functools.partial(time.sleep, 0.0005)
            for _ in range(3):
                spy.chunks.clear()
                await asyncio.gather(*(g.submit(nap) for _ in range(50)))
            assert len(spy.chunks) >= 2

    run(main())


def _counting_factory(spec: PoolSpec) -> Executor:
    return ThreadPoolExecutor(max_workers=spec.workers, thread_name_prefix="counting")


register_backend("grinder-test-counting", _counting_factory, replace=True)


@pytest.mark.parametrize("backend", ["thread", "grinder-test-counting"])
def test_auto_chunking_resolves_slow_items_one_by_one(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = SubmitSpy().install(monkeypatch)

    async def main() -> None:
        mgr = manager(backend=backend, workers_per_pool=1)
        g = grinder(mgr, batch_size_threshold=6, max_wait_seconds=0.01)
        async with serving(mgr, g):
            for _ in range(2):  # the second round runs with measured durations
                spy.chunks.clear()
                first_resolved = threading.Event()
                futures = [await g.enqueue(sleep_then, 0.02, i) for i in range(5)]
                # The last item waits until the first caller has its result:
                # one worker runs the items in turn, so if they shared a
                # chunk, the first result would only come after the last.
                futures.append(await g.enqueue(wait_then, first_resolved, 0.02, 5))
                futures[0].add_done_callback(lambda _f, ev=first_resolved: ev.set())
                results = await asyncio.wait_for(asyncio.gather(*futures), 30)
                assert results == [0, 1, 2, 3, 4, (True, 5)]
                assert spy.chunks == [1] * 6
            avg = g.stats()["avg_item_seconds"]
            assert avg is not None and avg >= 0.015

    run(main())


def test_process_chunks_are_plain_picklable_calls() -> None:
    outcomes, seconds = run_calls([(square, (3,), {}), (fail_with, ("x",), {})])
    assert outcomes[0] == (True, 9)
    assert outcomes[1][0] is False and isinstance(outcomes[1][1], KeyError)
    assert seconds >= 0


# ------------------------------------------------ pools broken before a batch


class BrokenPool(ThreadPoolExecutor):
    """Refuses every call, as a process pool whose worker died while it was
    idle does (``BrokenProcessPool`` from ``submit``)."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        raise BrokenProcessPool("a worker died while the pool was idle")


def first_pool_broken(spec: PoolSpec) -> Executor:
    return BrokenPool(1) if spec.index == 1 else ThreadPoolExecutor(spec.workers)


def test_items_a_broken_pool_refused_run_on_its_replacement() -> None:
    # They never ran, so they go back to the queue; and the lease whose
    # pool refused them gets no more batches (before its manager had
    # replaced the pool, every queued batch went to it and failed).
    register_backend("tests-first-pool-broken", first_pool_broken, replace=True)

    async def main() -> None:
        mgr = manager(backend="tests-first-pool-broken", max_pools=1, min_pools=1)
        g = grinder(mgr, batch_size_threshold=10, max_wait_seconds=0.01)
        async with serving(mgr, g):
            futures = [await g.enqueue(square, i) for i in range(100)]
            results = await asyncio.wait_for(asyncio.gather(*futures), 30)
            assert results == [i * i for i in range(100)]
            assert mgr.stats()["pools_broken"] == 1
            stats = g.stats()
            assert (stats["items_completed"], stats["items_failed"]) == (100, 0)

    run(main())


def test_items_refused_by_a_second_broken_pool_fail_instead_of_bouncing() -> None:
    register_backend("tests-every-pool-broken", lambda spec: BrokenPool(1), replace=True)

    async def main() -> None:
        mgr = manager(backend="tests-every-pool-broken", max_pools=1)
        g = grinder(mgr, batch_size_threshold=5, max_wait_seconds=0.01)
        async with serving(mgr, g):
            futures = [await g.enqueue(square, i) for i in range(20)]
            await asyncio.wait_for(asyncio.wait(futures), 30)
            assert all(isinstance(f.exception(), BrokenProcessPool) for f in futures)
            assert g.stats()["items_failed"] == 20
            assert mgr.stats()["pools_broken"] >= 2  # each item was refused twice

    run(main())


def test_a_draining_stop_runs_items_a_broken_pool_handed_back() -> None:
    register_backend("tests-first-pool-broken", first_pool_broken, replace=True)

    async def main() -> None:
        mgr = manager(backend="tests-first-pool-broken", max_pools=1, min_pools=1)
        g = grinder(mgr, batch_size_threshold=10, max_wait_seconds=30)
        async with serving(mgr):
            await g.start()
            # One batch: the batcher has nothing left to take once it has
            # leased a pool for it, and must still wait for it to come back.
            futures = [await g.enqueue(square, i) for i in range(5)]
            await g.stop()  # forms the batch at once; the broken pool refuses it
            assert [f.result() for f in futures] == [i * i for i in range(5)]

    run(main())


def second_pool_broken(spec: PoolSpec) -> Executor:
    return BrokenPool(1) if spec.index == 2 else ThreadPoolExecutor(spec.workers)


def test_items_handed_back_during_a_drain_do_not_wait_for_other_leases() -> None:
    # While a draining stop runs, a batch refused by a broken pool goes back
    # to the queue; it must get a fresh pool at once, not only after every
    # other lease's work (which may itself wait for it) has ended.
    register_backend("tests-second-pool-broken", second_pool_broken, replace=True)
    gate = threading.Event()

    async def main() -> None:
        mgr = manager(backend="tests-second-pool-broken", max_pools=2, workers_per_pool=2)
        g = grinder(mgr, batch_size_threshold=4, max_wait_seconds=30, chunk_size=1)
        async with serving(mgr):
            await g.start()
            try:
                held = [await g.enqueue(gate.wait, 30)]
                held += [await g.enqueue(square, i) for i in range(3)]
                await asyncio.wait_for(asyncio.gather(*held[1:]), 30)  # pool 1 holds the gate
                queued = [await g.enqueue(square, i) for i in range(3)]  # under the threshold
                stopping = asyncio.ensure_future(g.stop())  # their batch: pool 2 refuses it
                done = await asyncio.wait_for(asyncio.gather(*queued), 10)
                assert done == [0, 1, 4] and not held[0].done()
            finally:
                gate.set()
            await asyncio.wait_for(stopping, 30)
            assert held[0].result() is True
            assert mgr.stats()["pools_broken"] == 1

    run(main())
