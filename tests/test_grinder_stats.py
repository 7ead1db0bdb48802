"""WorkGrinder: loop ownership and stats."""

from __future__ import annotations

import asyncio
import functools
import json

import pytest

from tests.grinder_work import Counter, fail_with, square
from tests.support import Gate, error_in_other_loop, make_grinder, make_manager, run, serving

STATS_KEYS = {
    "started",
    "stopping",
    "pending",
    "batch_size_threshold",
    "max_wait_seconds",
    "lease_seconds",
    "oldest_wait_seconds",
    "batches_in_flight",
    "leases_held",
    "items_submitted",
    "items_completed",
    "items_failed",
    "items_cancelled",
}


manager = functools.partial(make_manager, workers_per_pool=2)
grinder = functools.partial(make_grinder, max_wait_seconds=0.05, batch_size_threshold=4)


# --------------------------------------------------------- loop ownership


@pytest.mark.parametrize("method", ["submit", "enqueue"])
def test_async_submission_from_another_loop_names_submit_from_thread(method: str) -> None:
    async def main() -> None:
        mgr = manager()
        g = grinder(mgr)
        async with serving(mgr, g):

            async def foreign() -> None:
                await getattr(g, method)(square, 2)

            error = await asyncio.to_thread(error_in_other_loop, foreign)
            assert isinstance(error, RuntimeError)
            assert "submit_from_thread" in str(error) and method in str(error)
            assert g.stats()["items_submitted"] == 0

    run(main())


def test_stats_stop_and_astats_from_another_loop_raise_runtime_error() -> None:
    async def main() -> None:
        mgr = manager()
        g = grinder(mgr)
        async with serving(mgr, g):

            async def foreign_astats() -> None:
                await g.astats()

            async def foreign_stop() -> None:
                await g.stop()

            async def foreign_stats() -> None:
                g.stats()

            for fn in (foreign_astats, foreign_stats):
                error = await asyncio.to_thread(error_in_other_loop, fn)
                assert isinstance(error, RuntimeError) and "stats_from_thread" in str(error)
            error = await asyncio.to_thread(error_in_other_loop, foreign_stop)
            assert isinstance(error, RuntimeError)
            assert g.stats()["started"] is True  # the foreign stop did nothing

    run(main())


def test_thread_safe_methods_refuse_the_owning_loop_thread() -> None:
    async def main() -> None:
        mgr = manager()
        g = grinder(mgr)
        async with serving(mgr, g):
            with pytest.raises(RuntimeError, match=r"submit\(\)"):
                g.submit_from_thread(square, 2)
            with pytest.raises(RuntimeError, match=r"astats\(\)"):
                g.stats_from_thread(timeout=1)
            assert g.stats()["items_submitted"] == 0

    run(main())


def test_stats_from_thread_before_start_raises_runtime_error() -> None:
    g = grinder(manager())
    with pytest.raises(RuntimeError, match="not started"):
        g.stats_from_thread(timeout=1)
    with pytest.raises(ValueError, match="timeout"):
        g.stats_from_thread(timeout=-1)


# ------------------------------------------------------------------ stats


def test_stats_before_start_and_after_stop() -> None:
    async def main() -> None:
        mgr = manager()
        g = grinder(mgr, batch_size_threshold=2, max_wait_seconds=0.5, lease_seconds=9.0)
        before = g.stats()
        assert before.keys() >= STATS_KEYS
        assert before["started"] is False and before["stopping"] is False
        assert before["pending"] == 0 and before["oldest_wait_seconds"] == 0.0
        assert (before["batch_size_threshold"], before["max_wait_seconds"]) == (2, 0.5)
        assert before["lease_seconds"] == 9.0
        json.dumps(before)
        async with serving(mgr):
            try:
                await g.start()
                assert await g.submit(square, 3) == 9
                await g.stop()
                after = g.stats()
                assert after["started"] is False and after["stopping"] is False
                assert after["pending"] == 0
                assert after["items_submitted"] == after["items_completed"] == 1
                assert after["batches_in_flight"] == after["leases_held"] == 0
                json.dumps(after)
                assert "stopping" not in repr(g)
            finally:
                await g.stop()

    run(main())


def test_stats_count_what_happened() -> None:
    async def main() -> None:
        mgr = manager(workers_per_pool=1)
        g = grinder(mgr, batch_size_threshold=3, max_wait_seconds=60.0)
        async with serving(mgr, g):
            gate = Gate()
            try:
                blocked = await g.enqueue(gate)
                fine = await g.enqueue(square, 2)
                bad = await g.enqueue(fail_with, "x")
                await gate.wait_started()
                running = await g.astats()
                assert running["started"] is True and running["stopping"] is False
                assert running["batches_in_flight"] == running["leases_held"] == 1
                assert running["pending"] == 0 and running["items_submitted"] == 3
                queued = [await g.enqueue(square, i) for i in range(2)]
                await asyncio.sleep(0.05)
                stats = g.stats()
                assert stats["pending"] == 2 and stats["oldest_wait_seconds"] >= 0.05
                assert stats["oldest_wait_seconds"] < 30
                queued[0].cancel()
                assert g.stats()["pending"] == 1
                gate.opened.set()
                await asyncio.gather(blocked, fine, bad, return_exceptions=True)
                assert "pending=1" in repr(g) and "started" in repr(g)
                await g.stop()  # drains the last queued item
                assert queued[1].result() == 1
                stats = g.stats()
                assert stats["items_submitted"] == 5
                assert stats["items_completed"] == 3  # gate, square(2), square(1)
                assert stats["items_failed"] == 1
                assert stats["items_cancelled"] == 1
                assert stats["pending"] == 0 and stats["batches_run"] >= 2
            finally:
                gate.opened.set()

    run(main())


def test_stats_from_thread_matches_the_loop_view() -> None:
    async def main() -> None:
        mgr = manager()
        g = grinder(mgr, batch_size_threshold=10, max_wait_seconds=60.0)
        async with serving(mgr, g):
            futures = [await g.enqueue(square, i) for i in range(3)]
            stats = await asyncio.to_thread(g.stats_from_thread, 10)
            assert stats["pending"] == 3 and stats["started"] is True
            assert stats.keys() >= STATS_KEYS
            for f in futures:
                f.cancel()

    run(main())


def test_many_submitters_from_threads_all_get_their_results() -> None:
    async def main() -> None:
        mgr = manager(max_pools=2)
        g = grinder(mgr, batch_size_threshold=8, max_wait_seconds=0.02)
        async with serving(mgr, g):
            counter = Counter()

            def submitter(base: int) -> list[object]:
                futures = [g.submit_from_thread(counter, base + i) for i in range(50)]
                return [f.result(timeout=20) for f in futures]

            results = await asyncio.gather(
                *(asyncio.to_thread(submitter, 1000 * t) for t in range(4))
            )
            for t, values in enumerate(results):
                assert values == [1000 * t + i for i in range(50)]
            assert counter.calls == 200
            assert g.stats()["items_completed"] == 200

    run(main())
