"""The manager's pool set, and the locks of the leasing package.

A :class:`PoolSet` is the rack a manager lends from: the idle pools, the
leases holding the others, the pools in transit to a waiter, the sizing
target, and the counters.  Every change to what the manager owns happens
here, under the *manager lock*; submitting work does not (see
:mod:`.desk`), so that leases do not contend with each other.

Locks
=====

========================  ==============================================
lock                      guards
========================  ==============================================
manager lock              ``PoolSet``: ``phase``, ``idle``, ``leases``,
(``PoolSet.lock``, one    ``target``, ``counts``, ``session`` and
per manager)              ``reaper`` while running; the waiter queue and
                          its in-transit count; per pool ``lease``,
                          ``idle_since`` and ``retired_working``.
lease lock                ``LeaseRecord``: ``state``, ``pending``, and the
(``LeaseRecord.lock``,    pool its work goes to (``pool``, ``on_done``),
one per lease, an         which only change with the manager lock held
``RLock``)                too, so either lock is enough to read them.
none: a one-way latch     ``Pool.broken``: :meth:`Pool.mark_broken` is a
                          test-and-set any thread may call.
========================  ==============================================

**Lock order: the manager lock first, then a lease lock.**  The loop takes
a lease's lock inside the manager lock to grant, release, drain, revoke,
replace a pool or stop; a thread holding a lease lock (a submission, a
done-callback) never takes the manager lock.  What a submission or
done-callback needs from the manager side (a broken pool replaced, a drained
lease settled) it asks for with ``call_soon_threadsafe`` instead.

A submission holds its lease's lock across ``executor.submit`` (see
:mod:`.desk` for why), so the loop can wait for a lease lock only while a
submission on *that* lease is inside its executor; other leases' work never
waits for it.

Reads without the lock: fields written under a lock may be read without it
for display only (``stats()``, ``repr``, ``lease.active``), a single
reference read never followed by a decision.  The lease times
(``hard_expires_at``...) never change after the grant.  ``session`` is read
by done-callbacks without the lock: it is set before the first pool exists
and cleared only after every pool has been joined.

Threads: every method here runs on the manager's loop, except
:meth:`PoolSet.executors` (any thread); :mod:`.stats` reads the set, under
the manager lock, from any thread.
"""

from __future__ import annotations

import enum
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from ..backends.base import BackendSession, PoolSpec
from .reaper import PoolReaper
from .records import LeaseRecord, LeaseState, Pool
from .waiters import WaiterQueue

__all__ = ["COUNTERS", "Phase", "PoolSet"]

#: The counters a manager keeps (keys of ``stats()``).
COUNTERS = (
    "leases_granted",
    "leases_released",
    "leases_revoked",
    "pools_created",
    "pools_retired",
    "pools_broken",
)


class Phase(enum.Enum):
    """Where a manager is in its life."""

    NEW = "new"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    #: A bug in its own machinery stopped the checker: it lends nothing
    #: until it is stopped and started again.
    BROKEN = "broken"


class PoolSet:
    """The pools a manager owns, and where each of them is.

    A pool is in exactly one place: idle, held by a lease, in transit to a
    waiter, or retired (handed to the reaper, no longer owned).

    Args:
        backend_name: The backend's name, for logs.
        min_pools: Fewest pools kept ready (the first target).
        max_pools: Most pools owned at once.
        workers_per_pool: Workers of each pool.
        name_prefix: Prefix for pool names.
        surplus_idle_seconds: How long a pool above the target may stay idle.
        logger: Where pool events are logged.
    """

    def __init__(
        self,
        *,
        backend_name: str,
        min_pools: int,
        max_pools: int,
        workers_per_pool: int,
        name_prefix: str,
        surplus_idle_seconds: float,
        logger: logging.Logger,
    ) -> None:
        self.backend_name = backend_name
        self.min_pools = min_pools
        self.max_pools = max_pools
        self.workers_per_pool = workers_per_pool
        self.name_prefix = name_prefix
        self.surplus_idle = surplus_idle_seconds
        self.logger = logger
        self.lock = threading.Lock()
        self.phase = Phase.NEW
        self.session: BackendSession | None = None
        self.reaper: PoolReaper | None = None
        self.idle: deque[Pool] = deque()
        self.leases: dict[str, LeaseRecord] = {}
        self.waiters = WaiterQueue(self.lock)
        self.target = min_pools
        self.counts = dict.fromkeys(COUNTERS, 0)
        #: Asks the checker to run by a ``time.monotonic()`` value (loop only).
        self.wake_checker_by: Callable[[float], None] = lambda when: None
        self._pool_numbers = itertools.count(1)
        self._create_failing = False  # the last pool creation failed (logged once)

    def __repr__(self) -> str:
        return (
            f"<PoolSet {self.phase.value} leased={len(self.leases)} idle={len(self.idle)} "
            f"target={self.target} max={self.max_pools} waiting={len(self.waiters)}>"
        )

    def owned_locked(self) -> int:
        """Pools owned: idle, leased, and in transit to a waiter."""
        return len(self.idle) + len(self.leases) + self.waiters.in_transit

    def set_phase(self, phase: Phase) -> None:
        with self.lock:
            self.phase = phase

    # ------------------------------------------------------------ lifecycle

    def open(self, session: BackendSession, reaper: PoolReaper, target: int) -> None:
        """Start with a backend session: build the first ``target`` pools."""
        with self.lock:
            self.session, self.reaper, self.target = session, reaper, target
            while len(self.idle) < target:
                self.idle.append(self.create_locked())

    def abandon(self) -> None:
        """Undo a failed :meth:`open`: shut its pools down and close the session."""
        for pool in self.idle:
            pool.executor.shutdown(wait=True, cancel_futures=True)
        self.idle.clear()
        if self.session is not None:
            self.session.close()
        self.session = self.reaper = None

    def end_all_leases(self) -> list[Future[Any]]:
        """Stop every lease taking work; return the work still pending.

        Returns:
            The unfinished futures submitted on any lease.
        """
        pending: list[Future[Any]] = []
        with self.lock:
            for record in self.leases.values():
                with record.lock:
                    record.state = LeaseState.DONE
                    pending += [f for f in record.pending if not f.done()]
        return pending

    def retire_all(self, *, terminate: bool) -> None:
        """Retire every pool still owned (the manager is stopping)."""
        with self.lock:
            pools = list(self.idle) + [r.pool for r in self.leases.values()]
            self.idle.clear()
            self.leases.clear()
            for pool in pools:
                pool.lease = None
                self.retire_locked(pool, terminate=terminate, cancel_futures=True)

    # ---------------------------------------------------------- pool moves

    def create_locked(self) -> Pool:
        """Build a new pool with the backend session."""
        assert self.session is not None
        index = next(self._pool_numbers)
        spec = PoolSpec(index, self.workers_per_pool, f"{self.name_prefix}-{index}")
        pool = Pool(self.session.create(spec), index)
        self._create_failing = False
        self.counts["pools_created"] += 1
        self.logger.debug("pool created pool=%s backend=%s", index, self.backend_name)
        return pool

    def retire_locked(self, pool: Pool, *, terminate: bool, cancel_futures: bool) -> None:
        """Stop owning ``pool``: the reaper shuts it down off the loop.

        Args:
            pool: A pool no longer idle, leased or in transit.
            terminate: Kill its running work first (where the backend can).
            cancel_futures: Cancel its work that has not started.
        """
        assert self.reaper is not None
        pool.retired_working = not pool.broken
        self.counts["pools_retired"] += 1
        self.reaper.retire(pool.executor, terminate=terminate, cancel_futures=cancel_futures)
        self.logger.debug("pool retired pool=%s terminate=%s", pool.index, terminate)

    def take_locked(self) -> Pool | None:
        """An idle pool, else a new one while below ``max_pools``, else ``None``."""
        if self.idle:
            return self.idle.pop()
        if self.owned_locked() < self.max_pools:
            return self.create_locked()
        return None

    def lend_locked(self, record: LeaseRecord) -> None:
        """Record a new lease holding ``record.pool``."""
        record.pool.lease = record
        self.leases[record.lease_id] = record
        self.counts["leases_granted"] += 1
        self.wake_checker_by(record.hard_expires_at)

    def end_lease_locked(self, record: LeaseRecord) -> None:
        """Forget a released lease (already ``DONE``) and take its pool back."""
        del self.leases[record.lease_id]
        self.counts["leases_released"] += 1
        self.settle_locked(record.pool)

    def settle_locked(self, pool: Pool) -> None:
        """A pool came back: hand it to a waiter, keep it idle, or retire it."""
        pool.lease = None
        if pool.broken or self.phase is not Phase.RUNNING:
            self.retire_locked(pool, terminate=pool.broken, cancel_futures=True)
            self.serve_waiters_locked()
            return
        if self.waiters.hand_over_locked(pool):
            return
        pool.idle_since = time.monotonic()
        if self.owned_locked() >= self.target and not self.surplus_idle:
            self.retire_locked(pool, terminate=False, cancel_futures=False)
            return
        self.idle.append(pool)
        # A surplus pool is kept for surplus_idle_seconds in case work comes
        # back, then retired by the checker (woken for it if need be).
        if self.owned_locked() > self.target:
            self.wake_checker_by(pool.idle_since + self.surplus_idle)

    def serve_waiters_locked(self) -> None:
        """Give waiters idle or new pools while there are any to give."""
        while self.waiters.waiting_locked():
            try:
                pool = self.take_locked()
            except Exception as exc:  # the backend cannot build a pool now
                self._creation_failed(exc)
                if not self.leases and not self.waiters.in_transit:
                    # No pool will come back to them: fail them rather than
                    # let them wait forever (while leases are out, the next
                    # pool released goes to the oldest waiter).
                    self.waiters.fail_all_locked(exc)
                return
            if pool is None:
                return
            self.waiters.hand_over_locked(pool)

    def _creation_failed(self, exc: BaseException) -> None:
        """Log a pool the backend could not build, once until one is built."""
        if not self._create_failing:
            self._create_failing = True
            self.logger.warning("pool creation failed backend=%s", self.backend_name, exc_info=exc)

    def replace_broken(self, pool: Pool) -> None:
        """Swap a broken pool, leased or idle, for a fresh one.

        Asked for (through the loop) by the first thread that saw the pool
        break.  By then its lease may have ended and the pool been retired
        for being broken: it still counts.  A pool the manager retired while
        it worked (revoked, stopped) does not: its calls failed because the
        manager killed them.
        """
        with self.lock:
            if pool.retired_working:
                return
            self.counts["pools_broken"] += 1
            if self.phase is not Phase.RUNNING:
                return
            record = pool.lease
            if record is None:
                if pool in self.idle:
                    self.idle.remove(pool)
                    self.retire_locked(pool, terminate=True, cancel_futures=True)
                    if self.owned_locked() < self.target:
                        self.idle.append(self.create_locked())
                    self.logger.warning("idle pool broken, retired pool=%s", pool.index)
                return  # in transit: the grant sees pool.broken and swaps it
            with record.lock:
                if record.pool is not pool or record.state is LeaseState.DONE:
                    return
                replacement = self.create_locked()
                replacement.lease = record
                record.attach(replacement)
            self.retire_locked(pool, terminate=True, cancel_futures=True)
            self.logger.warning(
                "pool broken, replaced pool=%s replacement=%s lease_id=%s",
                pool.index, replacement.index, record.lease_id,
            )

    # --------------------------------------------------------------- sizing

    def fit_to_target_locked(self, now: float) -> float | None:
        """Build pools up to the target; retire surplus idle ones that have
        been idle for ``surplus_idle_seconds`` (longest idle first).

        Returns:
            When the next surplus pool is due to go, or ``None``.
        """
        self.serve_waiters_locked()
        while self.owned_locked() < self.target:
            try:
                self.idle.append(self.create_locked())
            except Exception as exc:  # built on a later pass, or on demand
                self._creation_failed(exc)
                break
        while self.idle and self.owned_locked() > self.target:
            retire_at = self.idle[0].idle_since + self.surplus_idle
            if retire_at > now:
                return retire_at
            self.retire_locked(self.idle.popleft(), terminate=False, cancel_futures=False)
        return None

    # ----------------------------------------------------------- any thread

    def executors(self) -> list[Executor]:
        """Every executor owned or still shutting down; any thread.

        Takes each lease's lock, so waits for submissions in progress:
        ``ThreadPoolExecutor.submit`` starts a new worker thread and only
        then adds it to the pool's threads, and the worker may already be
        running the call (and asking whether its manager owns it) in
        between.  Once the submission has returned, the thread is listed.
        """
        with self.lock:
            found = [p.executor for p in self.idle]
            for record in self.leases.values():
                with record.lock:
                    found.append(record.pool.executor)
            reaper = self.reaper
        if reaper is not None:
            found += reaper.executors()
        return found
