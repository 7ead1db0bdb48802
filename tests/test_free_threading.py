"""The thread-facing entry points, hammered from many threads at once.

Each test starts its own grinder, manager or worker, has ``THREADS``
threads use it at the same moment (a barrier), and then checks exact
counts: every item ended once, with its own result, and ``stats()`` counts
what was submitted, no more, no less. On a free-threaded interpreter
(``PYTHON_GIL=0``) nothing serialises the threads, so a ``+=`` or a
check-then-act on shared state that is not guarded loses counts or items
here.

With pytest-run-parallel installed (the ``test`` extra), each test also
runs in two threads at once (``force_parallel_threads``), so two copies
of the whole scenario run side by side. Without it they are plain tests.

Counts are recorded just after a future gets its result (``concurrent
.futures`` wakes the waiter first; see PITFALLS, "Futures across
threads"), so a count is read after every result only once it has
settled, with a deadline; after ``stop()`` it must be exact at once.
"""

from __future__ import annotations

import collections
import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any

import pytest

from neoleasepool import BackgroundQueueWorker, LeasedExecutorManager, WorkGrinder
from neoleasepool.loops import ALoop

from .support import started_supervisor, wait_until

pytestmark = pytest.mark.force_parallel_threads(2)

#: Threads that use one object at once, and what each submits.
THREADS = 8
PER_THREAD = 40
#: A bound on every wait: a hang fails the test instead of stalling it.
DEADLINE = 30.0


def square(x: int) -> int:
    return x * x


def hammer(use: Callable[[int], None], threads: int = THREADS) -> None:
    """Run ``use(index)`` in ``threads`` threads released together; raise
    the first error any of them raised."""
    start = threading.Barrier(threads)

    def together(index: int) -> None:
        start.wait(DEADLINE)
        use(index)

    with concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="hammer") as pool:
        futures = [pool.submit(together, index) for index in range(threads)]
        for future in concurrent.futures.as_completed(futures, DEADLINE * 2):
            future.result()


def item_counts(stats: dict[str, Any]) -> tuple[int, int, int, int]:
    return (
        stats["items_submitted"],
        stats["items_completed"],
        stats["items_failed"],
        stats["items_cancelled"],
    )


def test_submit_from_thread_on_an_aloop_ends_every_item_once() -> None:
    aloop = ALoop(f"ft-grinder-{threading.get_ident()}")
    aloop.start()
    try:

        async def build() -> tuple[LeasedExecutorManager, WorkGrinder]:
            manager = LeasedExecutorManager(max_pools=2, workers_per_pool=2)
            grinder = WorkGrinder(
                executor_manager=manager, batch_size_threshold=8, max_wait_seconds=0.005
            )
            await manager.start()
            await grinder.start()
            return manager, grinder

        manager, grinder = aloop.call(build)
        cancelled = [0] * THREADS  # one slot per thread: nothing shared is written

        def feed(index: int) -> None:
            futures = []
            for i in range(PER_THREAD):
                x = index * 1000 + i
                future = grinder.submit_from_thread(square, x)
                if i % 7 == 3 and future.cancel():
                    cancelled[index] += 1
                    continue
                futures.append((x, future))
                if i % 10 == 0:
                    assert grinder.stats_from_thread(DEADLINE)["items_failed"] == 0
            for x, future in futures:
                assert future.result(DEADLINE) == x * x

        hammer(feed)
        total, dropped = THREADS * PER_THREAD, sum(cancelled)
        expected = (total, total - dropped, 0, dropped)
        wait_until(
            lambda: item_counts(grinder.stats_from_thread(DEADLINE)) == expected,
            timeout=DEADLINE,
        )
        aloop.call(grinder.stop)
        aloop.call(manager.stop)
        stats = grinder.stats()
        assert item_counts(stats) == expected
        assert stats["pending"] == 0 and stats["running"] == 0
    finally:
        aloop.stop(wait=DEADLINE)


def test_supervised_grinder_submit_and_enqueue_from_many_threads() -> None:
    with started_supervisor(
        f"ft-grinder-{threading.get_ident()}", max_threads=4, stop_wait=DEADLINE
    ) as sup:
        pool = sup.create_lease_manager("cpu", backend="thread", max_pools=2, workers_per_pool=2)
        grinder = sup.create_work_grinder(
            "g", pool, batch_size_threshold=8, max_wait_seconds=0.005
        )

        def feed(index: int) -> None:
            futures = []
            for i in range(PER_THREAD):
                x = index * 1000 + i
                if i % 2:
                    assert grinder.submit(square, x, timeout=DEADLINE) == x * x
                else:
                    futures.append((x, grinder.enqueue(square, x)))
                if i % 10 == 0:
                    assert grinder.stats(timeout=DEADLINE)["items_failed"] == 0
            for x, future in futures:
                assert future.result(DEADLINE) == x * x

        hammer(feed)
        total = THREADS * PER_THREAD
        expected = (total, total, 0, 0)
        wait_until(
            lambda: item_counts(grinder.stats(timeout=DEADLINE)) == expected, timeout=DEADLINE
        )
        grinder.stop(wait=DEADLINE)
        assert item_counts(grinder.stats()) == expected


def test_supervised_manager_lease_and_run_from_many_threads() -> None:
    rounds = 6
    with started_supervisor(
        f"ft-manager-{threading.get_ident()}", max_threads=4, stop_wait=DEADLINE
    ) as sup:
        pool = sup.create_lease_manager("cpu", backend="thread", max_pools=2, workers_per_pool=1)

        def use(index: int) -> None:
            for i in range(rounds):
                x = index * 1000 + i
                if i % 2:
                    assert pool.run(square, x, timeout=DEADLINE) == x * x
                else:
                    with pool.lease(owner=f"t{index}", timeout=DEADLINE) as lease:
                        assert lease.run(square, x, timeout=DEADLINE) == x * x
                        assert lease.executor.submit(square, x).result(DEADLINE) == x * x
                assert pool.stats()["leased"] <= 2

        hammer(use)
        leases = THREADS * rounds

        def settled() -> bool:
            stats = pool.stats()
            return (stats["leases_granted"], stats["leases_released"], stats["leased"]) == (
                leases, leases, 0
            )

        # A release drains calls whose done-callbacks may still be running.
        wait_until(settled, timeout=DEADLINE)
        stats = pool.stats()
        assert stats["leases_revoked"] == 0 and stats["pools_broken"] == 0


def test_queue_worker_put_threadsafe_from_many_threads_runs_each_item_once() -> None:
    seen: collections.Counter[tuple[int, int]] = collections.Counter()
    seen_lock = threading.Lock()

    def note(item: tuple[int, int], **kwargs: Any) -> None:  # a sync target: pool threads
        with seen_lock:
            seen[item] += 1

    with started_supervisor(
        f"ft-worker-{threading.get_ident()}", max_threads=4, stop_wait=DEADLINE
    ) as sup:
        worker = BackgroundQueueWorker("q", note, supervisor=sup)
        worker.start()

        def put(index: int) -> None:
            for i in range(PER_THREAD):
                worker.put_threadsafe((index, i))
                if i % 10 == 0:
                    assert worker.stats()["errors"] == 0

        hammer(put)
        worker.stop(wait=DEADLINE)  # items put before the stop still run
        total = THREADS * PER_THREAD
        assert seen == collections.Counter(
            {(index, i): 1 for index in range(THREADS) for i in range(PER_THREAD)}
        )
        stats = worker.stats()
        assert (stats["runs"], stats["errors"], stats["queued"]) == (total, 0, 0)
