"""A grinder fed from many plain threads, with blocking calls only.

Sixteen ordinary ``threading.Thread`` producers share one supervised
grinder: half of them call ``grinder.submit()``, which blocks for each
result, the other half call ``grinder.enqueue()``, which returns a
``concurrent.futures.Future`` at once.  Items from all threads are batched
together (up to 25 per batch) and each batch runs under one lease of a
thread pool.  ``max_pools=2`` lets two batches run at the same time: the
second pool is made on demand and shut down when its lease comes back.

``grinder.stats()`` and ``pool.stats()`` show what happened, and
``task_supervisor.stop()`` drains the grinder before it stops the manager.

Run from the repository root::

    python examples/31_sync_grinder_many_threads.py
"""

from __future__ import annotations

import threading

from neoleasepool import SupervisedWorkGrinder, task_supervisor

THREADS = 16
ITEMS_PER_THREAD = 200


def cube(value: int) -> int:
    return value**3


def submitter(grinder: SupervisedWorkGrinder, base: int, out: list[int]) -> None:
    # One item at a time: each submit() blocks until its batch has run.
    out.append(sum(grinder.submit(cube, base + i, timeout=10) for i in range(ITEMS_PER_THREAD)))


def enqueuer(grinder: SupervisedWorkGrinder, base: int, out: list[int]) -> None:
    # Everything at once: enqueue() returns a future without waiting.
    futures = [grinder.enqueue(cube, base + i) for i in range(ITEMS_PER_THREAD)]
    out.append(sum(f.result(timeout=10) for f in futures))


def main() -> None:
    task_supervisor.start()
    pool = task_supervisor.create_lease_manager(
        "cubes-pool", backend="thread", max_pools=2, workers_per_pool=4
    )
    grinder = task_supervisor.create_work_grinder(
        "cubes", pool, batch_size_threshold=25, max_wait_seconds=0.01
    )

    sums: list[int] = []
    threads = [
        threading.Thread(
            target=submitter if n % 2 == 0 else enqueuer,
            args=(grinder, n * ITEMS_PER_THREAD, sums),
            name=f"producer-{n}",
        )
        for n in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    total = THREADS * ITEMS_PER_THREAD
    expected = sum(cube(i) for i in range(total))
    print(f"{THREADS} threads, {total} items, sum of cubes correct: {sum(sums) == expected}")
    stats = grinder.stats()
    print(
        "grinder:",
        {key: stats[key] for key in (
            "items_submitted", "items_completed", "items_failed", "batches_run",
            "leases_acquired", "pending",
        )},
    )
    print(f"average batch: {stats['items_completed'] / stats['batches_run']:.1f} items")
    manager = pool.stats()
    print("manager:", {key: manager[key] for key in (
        "name", "aloop", "pools_created", "total", "leases_granted",
    )})

    task_supervisor.stop()  # the grinder drains, then the manager stops
    print("stopped:", grinder.stopped, pool.stopped)


if __name__ == "__main__":
    main()
