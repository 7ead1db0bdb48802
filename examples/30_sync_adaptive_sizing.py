"""Adaptive sizing from a plain sync script, driven by an interval worker.

A lease manager keeps ``ceil(devices / units_per_pool)`` pools ready
(between ``min_pools`` and ``max_pools``).  Its size provider reads a device
set that no event loop owns: an interval worker "scans" for devices every
0.2 s, updates the set under a lock, and calls ``pool.notify_scale_changed()``
(safe from any thread) whenever the set changed, so the manager resizes at
once instead of at its next ``check_interval``.

The main thread only reads what the worker reports and prints
``desired``/``total`` once the manager has caught up.  One
``task_supervisor.stop()`` stops the worker, the manager (joining every
pool's threads), the aloops and the task pool.

Run from the repository root::

    python examples/30_sync_adaptive_sizing.py
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

from neoleasepool import SupervisedLeaseManager, background_worker, task_supervisor

# What successive scans find: 12 devices, 31, 5, then none.
SCANS = [12, 31, 5, 0]

devices: set[str] = set()
devices_lock = threading.Lock()
changes: queue.Queue[int | None] = queue.Queue()


def device_count() -> int:
    """The size provider: called on the manager's aloop, read under the lock."""
    with devices_lock:
        return len(devices)


def settle(pool: SupervisedLeaseManager, deadline_seconds: float = 5.0) -> None:
    """Wait until the manager owns as many pools as the sizing rule asks."""
    deadline = time.monotonic() + deadline_seconds
    while pool.total_count != pool.desired_executor_count():
        if time.monotonic() > deadline:
            raise TimeoutError("the checker did not resize the manager in time")
        time.sleep(0.01)


def main() -> None:
    task_supervisor.start()
    pool = task_supervisor.create_lease_manager(
        "devices",
        backend="thread",
        min_pools=1,
        max_pools=4,
        units_per_pool=10,  # one pool serves up to 10 devices
        size_provider=device_count,
        check_interval=60,  # without a notify the checker would wait this long
        workers_per_pool=2,
    )
    print(f"started:  devices=0  desired={pool.desired_executor_count()} "
          f"total={pool.total_count}  (manager on aloop {pool.aloop.name!r})")

    scans = iter(SCANS)

    @background_worker(interval=0.2)
    def scanner(**kwargs: Any) -> bool:
        """Runs in a pool thread every 0.2 s; returning False stops it."""
        found = next(scans, None)
        if found is None:
            changes.put(None)
            return False
        with devices_lock:
            devices.clear()
            devices.update(f"device-{n}" for n in range(found))
        pool.notify_scale_changed()  # from a pool thread: fine
        changes.put(found)
        return True

    scanner.start()
    while (found := changes.get(timeout=10)) is not None:
        settle(pool)
        print(f"scan:     devices={found:<2} desired={pool.desired_executor_count()} "
              f"total={pool.total_count}")

    print("a call on the resized pool:", pool.run(sum, [1, 2, 3]))
    task_supervisor.stop()
    print("stopped:", pool.stopped, "- every pool thread joined")


if __name__ == "__main__":
    main()
