"""What the manager keeps per pool and per lease.

A :class:`Pool` is one executor the manager owns; a :class:`LeaseRecord` is
the manager's side of one lease.  The record carries the *lease lock*, which
guards what a submission touches, so that work submitted on different leases
never waits for one shared lock.  Which lock guards which field, and the
order the locks are taken in, is the table at the top of
:mod:`neoleasepool.leasing.pools`; the short form:

* ``LeaseRecord.state``, ``pending``, ``pool`` and ``on_done``: the lease
  lock.  ``pool`` and ``on_done`` change only with the manager lock held
  too, so either lock is enough to read them.
* ``Pool.lease``, ``idle_since`` and ``retired_working``: the manager lock.
* ``Pool.broken``: a one-way latch, set by :meth:`Pool.mark_broken` from any
  thread without a lock.
"""

from __future__ import annotations

import enum
import functools
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

__all__ = ["DoneCallback", "LeaseRecord", "LeaseState", "Pool"]


class LeaseState(enum.Enum):
    """Where a lease is in its life."""

    LIVE = "live"
    """Accepting work."""
    DRAINING = "draining"
    """Released; waiting for submitted work to finish."""
    SETTLING = "settling"
    """Drained; the pool is on its way back to the manager."""
    DONE = "done"
    """Released and settled, revoked, or ended by the manager's stop."""


class Pool:
    """One executor owned by a manager, and the lease that holds it (if any).

    Args:
        executor: The executor the backend built.
        index: The pool's number within its manager (shown in logs).
    """

    __slots__ = (
        "_broken_latch",
        "broken",
        "executor",
        "idle_since",
        "index",
        "lease",
        "retired_working",
    )

    def __init__(self, executor: Executor, index: int) -> None:
        self.executor = executor
        self.index = index
        self.broken = False
        #: Retired by the manager while it still worked (revoked, surplus,
        #: stopped): calls failing after that failed because it was shut down.
        self.retired_working = False
        self.lease: LeaseRecord | None = None
        self.idle_since = time.monotonic()
        # Acquired once, never released: a test-and-set nobody waits on, so
        # it takes no place in the lock order.
        self._broken_latch = threading.Lock()

    def __repr__(self) -> str:
        state = "broken" if self.broken else ("leased" if self.lease else "idle")
        return f"<Pool #{self.index} {state}>"

    def mark_broken(self) -> bool:
        """Mark the pool broken; safe from any thread, with or without locks.

        Returns:
            ``True`` for the first caller only, who then has the pool
            replaced; every failed call of a broken pool reports it.
        """
        first = self._broken_latch.acquire(blocking=False)
        self.broken = True
        return first


#: The manager's done-callback for the futures of one lease on one pool.
DoneCallback = Callable[["LeaseRecord", Pool, "Future[Any]"], None]


class LeaseRecord:
    """The manager's bookkeeping for one lease.

    Args:
        lease_id: Unique id of the lease within its manager.
        owner: The diagnostic label given to ``acquire()``.
        pool: The pool the lease holds.
        leased_at: ``time.monotonic()`` when the lease was granted.
        lease_seconds: Time until soft expiry.
        grace_seconds: Extra time after soft expiry before revocation.
        done: The manager's done-callback, bound to this record and its
            pool once per pool (:meth:`attach`), so that a submission
            allocates no callback object of its own.
    """

    __slots__ = (
        "_done",
        "grace_seconds",
        "hard_expires_at",
        "lease_id",
        "lease_seconds",
        "leased_at",
        "lock",
        "on_done",
        "owner",
        "pending",
        "pool",
        "soft_expires_at",
        "state",
    )

    def __init__(
        self,
        lease_id: str,
        owner: str | None,
        pool: Pool,
        leased_at: float,
        lease_seconds: float,
        grace_seconds: float,
        done: DoneCallback,
    ) -> None:
        self.lease_id = lease_id
        self.owner = owner
        self.leased_at = leased_at
        self.lease_seconds = lease_seconds
        self.grace_seconds = grace_seconds
        self.soft_expires_at = leased_at + lease_seconds
        self.hard_expires_at = self.soft_expires_at + grace_seconds
        # Reentrant: a submission holds it across ``executor.submit``, and an
        # executor may complete other futures of this lease inside ``submit``
        # (the Dask backend sends its next queued call there), running their
        # done-callbacks, which take it too, on the same thread.
        self.lock = threading.RLock()
        self.pending: set[Future[Any]] = set()
        self.state = LeaseState.LIVE
        self._done = done
        self.pool = pool
        self.on_done: Callable[[Future[Any]], None] = functools.partial(done, self, pool)

    def __repr__(self) -> str:
        return f"<LeaseRecord {self.lease_id} {self.state.value} pool={self.pool.index}>"

    def attach(self, pool: Pool) -> None:
        """Send the lease's work to ``pool`` from now on.

        The caller holds the manager lock and the lease lock, or the record
        is not yet known to any other thread.
        """
        self.pool = pool
        self.on_done = functools.partial(self._done, self, pool)

    def still_pending_locked(self) -> bool:
        """Forget finished futures; whether any submitted work is left.

        A future counts as finished as soon as ``done()`` says so:
        ``concurrent.futures`` wakes waiters on ``result()`` before it runs
        the done-callback that removes the future from ``pending``.
        """
        if self.pending:
            self.pending = {f for f in self.pending if not f.done()}
        return bool(self.pending)
