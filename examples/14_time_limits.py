"""Work that overstays is stopped: time limits, cancels and recycled workers.

A plain sync script with a supervised process grinder whose items have a
default time limit (``item_timeout=``). One job hangs: when its limit
passes, its caller gets ``ItemTimeoutError`` at once, the worker process
running it is stopped and replaced, and the other jobs of the same pool go
on. A job wrapped in ``time_limited(..., soft_timeout=)`` is warned first
and cleans up. A caller that stops waiting (the facade's ``timeout=``)
stops the job it started. Workers are recycled every 20 calls
(``max_tasks_per_child``), which ``ProcessPoolExecutor`` cannot do on
Python 3.11 to 3.13 without risking a hang.

Run from the repository root::

    python examples/14_time_limits.py
"""

from __future__ import annotations

import os
import time

from neoleasepool import (
    ItemTimeoutError,
    SoftTimeLimitExceeded,
    task_supervisor,
    time_limited,
)


def measure(x: int) -> tuple[int, int]:
    """A quick job: its result and the worker that ran it."""
    return x * x, os.getpid()


def hang(seconds: float) -> None:
    """A job that never finishes in time."""
    time.sleep(seconds)


def report(seconds: float) -> str:
    """A long job that tidies up when warned by its soft limit."""
    try:
        time.sleep(seconds)
    except SoftTimeLimitExceeded:
        return "partial report (stopped at the soft limit, cleaned up)"
    return "full report"


def main() -> None:
    task_supervisor.start()
    try:
        cpu = task_supervisor.create_lease_manager(
            "cpu", backend="process", max_pools=1, workers_per_pool=2, max_tasks_per_child=20
        )
        grinder = task_supervisor.create_work_grinder("jobs", cpu, item_timeout=2.0)
        hung = grinder.enqueue(hang, 60)
        quick = [grinder.enqueue(measure, x) for x in range(60)]
        start = time.perf_counter()
        try:
            hung.result(timeout=30)
        except ItemTimeoutError as exc:
            print(f"hung job: {exc}")
        print(f"  ...reported after {time.perf_counter() - start:.1f} s")
        results = [f.result(timeout=30) for f in quick]
        print(f"the other {len(results)} jobs finished on {len({pid for _, pid in results})} "
              "worker processes (recycled every 20 calls)")
        print(grinder.submit(time_limited(report, 5, soft_timeout=0.5), 30))
        try:
            grinder.submit(hang, 60, timeout=0.5)  # the caller gives up: the job is stopped
        except TimeoutError:
            print("a caller stopped waiting after 0.5 s: its job was stopped too")
        stats = grinder.stats()
        print(f"items: {stats['items_completed']} completed, {stats['items_failed']} failed "
              f"({stats['items_timed_out']} timed out), {stats['items_cancelled']} cancelled")
    finally:
        task_supervisor.stop()


if __name__ == "__main__":
    main()
