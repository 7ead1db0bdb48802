"""Time limits and cancellation of grinder items, on threads and processes.

On the process backend our pool stops the worker of an item that overstays
or is cancelled while running, and replaces it; on threads the item's
future fails at once, the function sees ``current_item().cancelled``, and
its slot stays busy until it returns.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from neoleasepool import (
    ItemTimeoutError,
    LeasedExecutorManager,
    LeasePoolError,
    WorkGrinder,
    current_item,
    time_limited,
)
from tests.limits_work import (
    blocked,
    clean_up_on_soft_limit,
    echo,
    getpid,
    limits_seen,
    pid_then_sleep,
    until_cancelled,
)
from tests.support import await_until, make_manager, run, serving, wait_until


def _grinder(mgr: LeasedExecutorManager, **kwargs: Any) -> WorkGrinder:
    kwargs.setdefault("max_wait_seconds", 0.01)
    kwargs.setdefault("batch_size_threshold", 1)
    return WorkGrinder(executor_manager=mgr, **kwargs)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _pid_in(path: Path) -> int:
    wait_until(lambda: path.exists() and path.read_text() != "", timeout=30)
    return int(path.read_text())


# ------------------------------------------------------------ arguments


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), True, "5"])
def test_item_timeout_must_be_a_positive_number_of_seconds(bad: object) -> None:
    with pytest.raises(ValueError, match="item_timeout"):
        WorkGrinder(executor_manager=make_manager(), item_timeout=bad)  # type: ignore[arg-type]


def test_time_limited_checks_its_limits() -> None:
    with pytest.raises(ValueError, match="needs a timeout"):
        time_limited(getpid)
    with pytest.raises(ValueError, match="soft_timeout must be below timeout"):
        time_limited(getpid, 1.0, soft_timeout=2.0)
    with pytest.raises(ValueError, match="timeout"):
        time_limited(getpid, -1)
    with pytest.raises(TypeError, match="callable"):
        time_limited(42)  # type: ignore[arg-type]
    limited = time_limited(getpid, 3)
    assert time_limited(limited, 5).timeout == 5  # new limits replace the old
    assert limited() == os.getpid()  # called directly: just the function


@pytest.mark.parametrize(
    ("option", "words"),
    [
        ({"max_tasks_per_child": 0}, "max_tasks_per_child"),
        ({"max_memory_per_child": -1}, "max_memory_per_child"),
        ({"max_child_age_seconds": float("nan")}, "max_child_age_seconds"),
        ({"kill_grace_seconds": -1}, "kill_grace_seconds"),
        ({"name": "mine"}, "names its pools itself"),
    ],
)
def test_process_pool_options_are_checked_when_the_manager_is_built(
    option: dict[str, Any], words: str
) -> None:
    with pytest.raises(ValueError, match=words):
        LeasedExecutorManager(backend="process", max_pools=1, **option)


def test_current_item_outside_offloaded_work_says_where_it_works() -> None:
    with pytest.raises(RuntimeError, match="only inside a function run by a WorkGrinder"):
        current_item()


# -------------------------------------------------------------- threads


def test_a_thread_item_past_its_limit_fails_at_once_and_its_slot_stays_busy() -> None:
    started, release = threading.Event(), threading.Event()

    async def main() -> None:
        mgr = make_manager(max_pools=2)  # the overdue item keeps its lease and pool
        g = _grinder(mgr, item_timeout=0.3)
        async with serving(mgr, g):
            hung = await g.enqueue(blocked, started, release)
            begun = time.monotonic()
            with pytest.raises(ItemTimeoutError) as caught:
                await hung
            assert time.monotonic() - begun < 10
            error = caught.value
            assert isinstance(error, TimeoutError) and isinstance(error, LeasePoolError)
            assert error.function == "blocked" and error.limit == 0.3
            assert error.elapsed >= 0.3
            assert "blocked() ran past its time limit of 0.3 s" in str(error)
            stats = g.stats()
            assert stats["items_timed_out"] == 1
            assert stats["items_overdue"] == 1  # the thread still runs it
            assert stats["items_failed"] == 1
            # Other items go on, on another lease.
            assert await g.submit(echo, 1) == ((1,), {})
            assert g.stats()["items_overdue"] == 1
            release.set()
            await await_until(lambda: g.stats()["items_overdue"] == 0)

    try:
        run(main())
    finally:
        release.set()


def test_a_cooperative_thread_function_sees_its_limit_and_stops() -> None:
    started, seen = threading.Event(), []

    async def main() -> None:
        mgr = make_manager()
        g = _grinder(mgr)
        async with serving(mgr, g):
            with pytest.raises(ItemTimeoutError):
                await g.submit(time_limited(until_cancelled, 0.2), started, seen)
            await asyncio.to_thread(wait_until, lambda: seen == [True])

    run(main())
    assert seen == [True]


def test_a_soft_limit_on_threads_tells_the_function_which_may_still_return() -> None:
    started, seen = threading.Event(), []

    async def main() -> None:
        mgr = make_manager()
        g = _grinder(mgr)
        async with serving(mgr, g):
            limited = time_limited(until_cancelled, 30, soft_timeout=0.2)
            assert await g.submit(limited, started, seen) == "stopped"
            assert g.stats()["items_timed_out"] == 0

    run(main())
    assert seen == [True]


def test_a_running_thread_item_cancelled_by_its_caller_sees_its_token() -> None:
    started, seen = threading.Event(), []

    async def main() -> None:
        mgr = make_manager()
        g = _grinder(mgr)
        async with serving(mgr, g):
            future = await g.enqueue(until_cancelled, started, seen)
            await asyncio.to_thread(started.wait, 30)
            assert future.cancel()
            with pytest.raises(asyncio.CancelledError):
                await future
            await asyncio.to_thread(wait_until, lambda: seen == [True])
            assert g.stats()["items_cancelled"] == 1

    run(main())


def test_an_asyncio_timeout_around_submit_cancels_the_running_item() -> None:
    started, seen = threading.Event(), []

    async def main() -> None:
        mgr = make_manager()
        g = _grinder(mgr)
        async with serving(mgr, g):
            with pytest.raises((asyncio.TimeoutError, TimeoutError)):
                await asyncio.wait_for(g.submit(until_cancelled, started, seen), 0.3)
            await asyncio.to_thread(wait_until, lambda: seen == [True])

    run(main())


def test_limits_travel_with_the_function_and_take_no_keyword_argument() -> None:
    async def main() -> None:
        mgr = make_manager()
        g = _grinder(mgr)
        async with serving(mgr, g):
            got = await g.submit(time_limited(echo, 5), 1, timeout=3, soft_timeout=2)
            assert got == ((1,), {"timeout": 3, "soft_timeout": 2})
            seen = await g.submit(time_limited(limits_seen, 5, soft_timeout=4))
            assert seen == (5, 4, "limits_seen")

    run(main())


def test_submit_from_thread_and_the_blocking_facade_apply_limits() -> None:
    started, release = threading.Event(), threading.Event()

    async def main() -> None:
        mgr = make_manager(workers_per_pool=2)
        g = _grinder(mgr)
        async with serving(mgr, g):

            def from_thread() -> object:
                future = g.submit_from_thread(time_limited(blocked, 0.2), started, release)
                try:
                    return future.result(timeout=30)
                except Exception as exc:
                    return exc

            error = await asyncio.to_thread(from_thread)
            assert isinstance(error, ItemTimeoutError)
            release.set()

    try:
        run(main())
    finally:
        release.set()


def test_a_map_chunk_past_its_limit_fails_its_inputs_with_the_timeout() -> None:
    release = threading.Event()

    async def main() -> None:
        mgr = make_manager()
        g = _grinder(mgr, item_timeout=0.2)
        async with serving(mgr, g):
            results = [
                r async for r in g.map(
                    _slow_if_three, range(4), chunk_size=1, return_exceptions=True
                )
            ]
            assert results[:3] == [0, 1, 2]
            assert isinstance(results[3], ItemTimeoutError)
            assert "(a chunk of a map)" in str(results[3])
            release.set()

    def _slow_if_three(value: int) -> int:
        if value == 3:
            release.wait(30)
        return value

    try:
        run(main())
    finally:
        release.set()


# ------------------------------------------------------------ processes


def test_a_process_item_past_its_limit_stops_its_worker_and_nothing_else(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        mgr = make_manager(backend="process", workers_per_pool=2)
        g = _grinder(mgr)
        async with serving(mgr, g):
            first = await g.submit(getpid)
            hung = await g.enqueue(time_limited(pid_then_sleep, 1.0), str(tmp_path / "pid"), 60)
            pid = await asyncio.to_thread(_pid_in, tmp_path / "pid")
            others = [await g.enqueue(getpid) for _ in range(20)]
            with pytest.raises(ItemTimeoutError) as caught:
                await hung
            assert "pid_then_sleep() ran past its time limit of 1 s" in str(caught.value)
            assert all(isinstance(p, int) for p in await asyncio.gather(*others))
            await asyncio.to_thread(wait_until, lambda: not _alive(pid), timeout=30)
            assert await g.submit(getpid) != pid  # served by a replacement
            stats = g.stats()
            assert stats["items_timed_out"] == 1 and stats["items_overdue"] == 0
            assert isinstance(first, int)
            restarted = mgr.stats()["backend_details"]["workers_restarted"]
            assert restarted["timeout"] == 1 and restarted["died"] == 0

    run(main(), timeout=120)


def test_a_process_item_cancelled_while_running_stops_its_worker(tmp_path: Path) -> None:
    async def main() -> None:
        mgr = make_manager(backend="process")
        g = _grinder(mgr)
        async with serving(mgr, g):
            future = await g.enqueue(pid_then_sleep, str(tmp_path / "pid"), 60)
            pid = await asyncio.to_thread(_pid_in, tmp_path / "pid")
            assert future.cancel()
            await asyncio.to_thread(wait_until, lambda: not _alive(pid), timeout=30)
            assert await g.submit(getpid) != pid  # the one worker was replaced
            assert g.stats()["items_cancelled"] == 1

    run(main(), timeout=120)


def test_the_blocking_facade_timeout_stops_a_running_process_item(tmp_path: Path) -> None:
    from neoleasepool import TaskSupervisor

    sup = TaskSupervisor(id="limits-facade")
    sup.start()
    try:
        mgr = sup.create_lease_manager("cpu", backend="process", max_pools=1, workers_per_pool=1)
        g = sup.create_work_grinder("g", mgr, max_wait_seconds=0.01, batch_size_threshold=1)
        with pytest.raises(TimeoutError):
            g.submit(pid_then_sleep, str(tmp_path / "pid"), 60, timeout=2)
        pid = _pid_in(tmp_path / "pid")
        wait_until(lambda: not _alive(pid), timeout=30)
        assert g.submit(getpid, timeout=60) != pid
    finally:
        sup.stop(wait=60)


def test_a_soft_limit_interrupts_the_function_on_a_process_worker() -> None:
    async def main() -> None:
        mgr = make_manager(backend="process")
        g = _grinder(mgr)
        async with serving(mgr, g):
            limited = time_limited(clean_up_on_soft_limit, 30, soft_timeout=0.3)
            assert await g.submit(limited, 20) == "cleaned up"
            assert await g.submit(time_limited(limits_seen, 9)) == (9, None, "limits_seen")

    run(main(), timeout=120)


def test_lease_executor_submit_honours_a_time_limited_function(tmp_path: Path) -> None:
    async def main() -> None:
        mgr = make_manager(backend="process")
        async with serving(mgr), await mgr.acquire(owner="t") as lease:
            future = lease.executor.submit(
                time_limited(pid_then_sleep, 0.5), str(tmp_path / "pid"), 60
            )
            with pytest.raises(ItemTimeoutError):
                await asyncio.wrap_future(future)
            assert isinstance(lease.executor.submit(getpid).result(60), int)

    run(main(), timeout=120)


@pytest.mark.parametrize("how", ["submit", "map"])
def test_max_tasks_per_child_two_with_one_worker_does_not_hang(how: str) -> None:
    """CPython gh-115634: ProcessPoolExecutor hangs on the third item here."""

    async def main() -> list[int]:
        mgr = LeasedExecutorManager(
            backend="process", max_pools=1, workers_per_pool=1, max_tasks_per_child=2
        )
        async with serving(mgr), await mgr.acquire(owner="t") as lease:
            if how == "submit":
                futures = [lease.executor.submit(getpid, i) for i in range(10)]
                return [await asyncio.wrap_future(f) for f in futures]
            return await asyncio.to_thread(
                lambda: list(lease.executor.map(getpid, range(10), timeout=60))
            )

    pids = run(main(), timeout=120)
    assert len(pids) == 10
    assert [len(set(pids[i : i + 2])) for i in range(0, 10, 2)] == [1] * 5
    assert len(set(pids)) == 5  # a new worker every two tasks


def test_stdlib_process_backend_stays_available() -> None:
    async def main() -> None:
        mgr = make_manager(backend="stdlib-process")
        g = _grinder(mgr)
        async with serving(mgr, g):
            assert isinstance(await g.submit(getpid), int)
            assert mgr.stats()["backend_details"]["pool"] == "ProcessPoolExecutor"

    run(main(), timeout=120)


def test_a_timed_out_item_ends_once_even_if_its_result_arrives_together() -> None:
    async def main() -> None:
        mgr = make_manager(workers_per_pool=2)
        g = _grinder(mgr)
        async with serving(mgr, g):
            ends: list[int] = []
            futures = []
            for _ in range(50):
                future = await g.enqueue(time_limited(time.sleep, 0.02), 0.02)
                future.add_done_callback(lambda f: ends.append(1))
                futures.append(future)
            done = await asyncio.gather(*futures, return_exceptions=True)
            assert all(d is None or isinstance(d, ItemTimeoutError) for d in done)
            await asyncio.sleep(0)
            assert len(ends) == 50
            stats = g.stats()
            assert stats["items_completed"] + stats["items_failed"] == 50
            timed_out = sum(isinstance(d, ItemTimeoutError) for d in done)
            assert stats["items_timed_out"] == timed_out

    run(main())
