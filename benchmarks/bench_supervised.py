"""The blocking facades from sync code: grinder, lease, and the aloop hop.

Rows (issue 5), each against a baseline timed in the same run:

* 8 plain threads each calling ``grinder.submit(noop)`` 2,500 times,
  against the same 8 threads calling ``ThreadPoolExecutor(4).submit(noop)
  .result()`` (target 0.9x, issue 14); and, if neotasker is installed,
  its supervisor's ``spawn(noop).result()`` (a 4-thread pool) against the
  same baseline.
  The grinder is the facade of :meth:`TaskSupervisor.create_work_grinder`
  on a thread manager with 4 workers per pool, configured so that it does
  the same job as the baseline:

  - ``max_pools=1``: 4 worker threads, as many as the baseline's pool;
  - ``batch_size_threshold=8``: every caller blocks on one item, so at most
    8 items are ever pending; a larger threshold is never reached and
    every batch would wait for ``max_wait_seconds``, a smaller one splits
    the callers into more batches (more lease and loop work per item);
  - ``max_wait_seconds=0.001``: when callers fall out of step, a partial
    batch waits at most 1 ms (about 20 baseline calls) for the rest.

* ``with pool.lease() as lease: lease.run(noop)`` per call, from one
  thread: what a lease costs sync code (two hops to the aloop and one
  thread round trip), beside leasepool 0.1.3's async acquire + run +
  release in ``asyncio.run`` on a manager built with the same arguments.
* The hop: one blocking ``pool.aloop.call(noop_coroutine)``, against
  ``asyncio.run_coroutine_threadsafe(noop_coroutine(), loop).result()`` on
  a plain loop thread, in microseconds per call.  A diagnostic row times
  ``pool.acquire()`` + ``release()`` (two blocking calls) against two such
  hops.

Sides alternate within every repetition, so that drift on a shared machine
hits them alike; each figure is the median of ``REPEAT`` repetitions timed
with ``time.perf_counter``.  The facades run on a fresh
:class:`TaskSupervisor`, stopped at the end.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from neoleasepool import SupervisedLeaseManager, TaskSupervisor

from ._harness import (
    Reporter,
    Row,
    alternating_medians,
    from_threads,
    grinder_kwargs,
    have,
    manager_kwargs,
)
from ._work import noop

THREADS = 8
CALLS_PER_THREAD = 2_500
WORKERS = 4
LEASE_CYCLES = 2_000
HOPS = 5_000
REPEAT = 5
WARMUP = 1

# One set of arguments for our managers and leasepool's.
MANAGER_KWARGS = manager_kwargs(max_pools=1, workers_per_pool=WORKERS)
GRINDER_KWARGS = grinder_kwargs(threshold=THREADS, max_wait_seconds=0.001)


async def noop_coroutine() -> None:
    return None


def _alternating_medians(sides: list[Callable[[], float]]) -> list[float]:
    return alternating_medians(sides, repeat=REPEAT, warmup=WARMUP)


def _from_threads(call: Callable[[], Any]) -> float:
    """Seconds for ``THREADS`` threads to make ``CALLS_PER_THREAD`` calls each."""
    return from_threads(call, THREADS, CALLS_PER_THREAD)


def _timed(fn: Callable[[], Any]) -> Callable[[], float]:
    def side() -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    return side


# ------------------------------------------------------------------ rows


def _grinder_rows(reporter: Reporter, supervisor: TaskSupervisor) -> None:
    pool = supervisor.create_lease_manager("bench-grinder-pool", **MANAGER_KWARGS)
    grinder = supervisor.create_work_grinder("bench-grinder", pool, **GRINDER_KWARGS)
    plain = ThreadPoolExecutor(WORKERS, thread_name_prefix="bench-plain")
    neotasker: Any = None
    if have("neotasker"):
        neotasker = importlib.import_module("neotasker").TaskSupervisor(
            supervisor_id="bench_supervised_nt"
        )
        neotasker.set_thread_pool(max_size=WORKERS)
        neotasker.start()
    try:
        sides = [
            lambda: _from_threads(lambda: grinder.submit(noop)),
            lambda: _from_threads(lambda: plain.submit(noop).result()),
        ]
        if neotasker is not None:
            sides.append(lambda: _from_threads(lambda: neotasker.spawn(noop).result()))
        medians = _alternating_medians(sides)
        batches = grinder.stats()["batches_run"]
    finally:
        plain.shutdown(wait=True)
        if neotasker is not None:
            neotasker.stop()
        grinder.stop()
        pool.stop()
    calls = THREADS * CALLS_PER_THREAD
    rates = [calls / seconds for seconds in medians]
    submitted = calls * (REPEAT + WARMUP)
    reporter.add(
        Row(
            name=f"grinder.submit(noop), {THREADS} threads",
            unit="calls/s",
            ours=rates[0],
            baseline_name=f"TPE({WORKERS}).submit().result()",
            baseline=rates[1],
            target=0.9,
            notes=f"{THREADS}x{CALLS_PER_THREAD:,} calls; {submitted / batches:.1f} items/batch",
        )
    )
    reporter.add(
        Row(
            name=f"neotasker spawn(noop).result(), {THREADS} threads",
            unit="calls/s",
            ours=rates[2] if neotasker is not None else 0.0,
            baseline_name=f"TPE({WORKERS}).submit().result()",
            baseline=rates[1] if neotasker is not None else None,
            notes="reference: a 4-thread pool behind neotasker's spawn"
            + ("" if neotasker is not None else "; neotasker not installed"),
        )
    )


def _lease_cycles(pool: SupervisedLeaseManager) -> None:
    for _ in range(LEASE_CYCLES):
        with pool.lease() as lease:
            lease.run(noop)


async def _leasepool_cycles(manager: Any) -> None:
    for _ in range(LEASE_CYCLES):
        lease = await manager.acquire(owner="bench")
        await lease.run(noop)
        await lease.release()


class _LeasepoolThread:
    """leasepool's manager started by ``asyncio.run`` in a thread of its own,
    serving one batch of cycles per request (so its sides can alternate with
    ours)."""

    def __init__(self) -> None:
        self._requests: asyncio.Queue[bool] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._done = threading.Event()
        self._elapsed = 0.0
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),),
                                        name="bench-leasepool")

    async def _main(self) -> None:
        leasepool = importlib.import_module("leasepool")  # bench-only baseline
        manager = leasepool.LeasedExecutorManager(**MANAGER_KWARGS)
        await manager.start()
        self._requests = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._ready.set()
        try:
            while await self._requests.get():
                start = time.perf_counter()
                await _leasepool_cycles(manager)
                self._elapsed = time.perf_counter() - start
                self._done.set()
        finally:
            await manager.stop()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()

    def _ask(self, more: bool) -> None:
        assert self._loop is not None and self._requests is not None
        self._loop.call_soon_threadsafe(self._requests.put_nowait, more)

    def side(self) -> float:
        self._done.clear()
        self._ask(True)
        self._done.wait()
        return self._elapsed

    def stop(self) -> None:
        self._ask(False)
        self._thread.join()


def _lease_rows(reporter: Reporter, supervisor: TaskSupervisor) -> None:
    pool = supervisor.create_lease_manager("bench-lease-pool", **MANAGER_KWARGS)
    baseline = _LeasepoolThread() if have("leasepool") else None
    try:
        sides = [_timed(lambda: _lease_cycles(pool))]
        if baseline is not None:
            baseline.start()
            sides.append(baseline.side)
        medians = _alternating_medians(sides)
    finally:
        if baseline is not None:
            baseline.stop()
        pool.stop()
    reporter.add(
        Row(
            name="sync with pool.lease(): lease.run(noop)",
            unit="leases/s",
            ours=LEASE_CYCLES / medians[0],
            baseline_name="leasepool 0.1.3 async",
            baseline=LEASE_CYCLES / medians[1] if baseline is not None else None,
            notes=f"{LEASE_CYCLES:,} sequential cycles; baseline awaits acquire+run+release"
            + ("" if baseline is not None else "; leasepool not installed"),
        )
    )


def _hop_rows(reporter: Reporter, supervisor: TaskSupervisor) -> None:
    pool = supervisor.create_lease_manager("bench-hop-pool", **MANAGER_KWARGS)
    plain_loop = asyncio.new_event_loop()
    plain_thread = threading.Thread(target=plain_loop.run_forever, name="bench-plain-loop")
    plain_thread.start()

    def ours() -> None:
        call = pool.aloop.call
        for _ in range(HOPS):
            call(noop_coroutine)

    def plain() -> None:
        for _ in range(HOPS):
            asyncio.run_coroutine_threadsafe(noop_coroutine(), plain_loop).result()

    def acquire_release() -> None:
        for _ in range(HOPS // 2):
            pool.acquire().release()

    try:
        medians = _alternating_medians([_timed(ours), _timed(plain), _timed(acquire_release)])
    finally:
        plain_loop.call_soon_threadsafe(plain_loop.stop)
        plain_thread.join()
        plain_loop.close()
        pool.stop()
    hop_us = [seconds / HOPS * 1e6 for seconds in medians[:2]]
    cycle_us = medians[2] / (HOPS // 2) * 1e6
    reporter.add(
        Row(
            name="hop: pool.aloop.call(noop coroutine)",
            unit="us/call",
            ours=hop_us[0],
            baseline_name="run_coroutine_threadsafe",
            baseline=hop_us[1],
            higher_is_better=False,
            notes=f"{HOPS:,} sequential blocking calls",
        )
    )
    reporter.add(
        Row(
            name="pool.acquire() + release() (two hops)",
            unit="us/cycle",
            ours=cycle_us,
            baseline_name="2 x run_coroutine_threadsafe",
            baseline=2 * hop_us[1],
            higher_is_better=False,
            notes="diagnostic: each blocking call should cost about one hop",
        )
    )


def run(reporter: Reporter) -> None:
    """Run every row on a fresh supervisor, stopped at the end."""
    supervisor = TaskSupervisor(id="bench_supervised")
    supervisor.start()
    try:
        _grinder_rows(reporter, supervisor)
        _lease_rows(reporter, supervisor)
        _hop_rows(reporter, supervisor)
    finally:
        supervisor.stop()
