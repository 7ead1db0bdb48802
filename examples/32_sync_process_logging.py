"""CPU work in worker processes from sync code, with their logs forwarded.

Worker processes have logging of their own: by default their records go
nowhere the parent can see.  With ``forward_process_logs=True`` each
worker's root logger gets one queue handler, and a listener thread in the
parent re-emits every record through ``process_log_target_logger``, so the
parent's handlers and format apply.  Here that logger has a handler that
prints each record with the worker process's name and pid.  The listener
re-emits records as they arrive, so its lines may interleave with the
script's own output.

The work is ``count_primes`` on the process backend, run two ways: one
call on a lease (``lease.run``) and a fan-out through a grinder.
Forwarding uses the ``forkserver`` (or ``spawn``) start method, so the
script keeps its work under ``if __name__ == "__main__":``.

Run from the repository root::

    python examples/32_sync_process_logging.py
"""

from __future__ import annotations

import logging
import sys

from neoleasepool import task_supervisor

log = logging.getLogger("primes")


def count_primes(limit: int) -> int:
    """CPU-bound work that logs from inside the worker process."""
    count = sum(1 for n in range(2, limit) if all(n % d for d in range(2, int(n**0.5) + 1)))
    log.info("primes below %s: %s", limit, count)
    return count


def main() -> None:
    # The parent side: a logger with a handler that prints, to stdout.
    forwarded = logging.getLogger("from_workers")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        logging.Formatter("  [parent handler] %(processName)s pid=%(process)d %(name)s: "
                          "%(message)s")
    )
    forwarded.addHandler(handler)
    forwarded.setLevel(logging.INFO)
    forwarded.propagate = False

    task_supervisor.start()
    pool = task_supervisor.create_lease_manager(
        "cpu",
        backend="process",
        max_pools=1,
        workers_per_pool=2,
        forward_process_logs=True,
        process_log_level="INFO",
        process_log_target_logger=forwarded,
    )
    with pool.lease(owner="job-1", timeout=30) as lease:
        print("lease.run:", lease.run(count_primes, 20_000, timeout=30))

    grinder = task_supervisor.create_work_grinder(
        "primes", pool, batch_size_threshold=4, max_wait_seconds=0.05
    )
    futures = [grinder.enqueue(count_primes, limit) for limit in (1_000, 2_000, 3_000, 4_000)]
    print("grinder:", [f.result(timeout=30) for f in futures])

    task_supervisor.stop()  # grinder, manager (worker processes joined), aloops, pool
    print("stopped: worker processes joined, log listener closed")


if __name__ == "__main__":
    main()
