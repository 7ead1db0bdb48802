"""The lease desk: grants leases, takes their work, and takes them back.

The desk is the host a lease and its executor proxy talk to (the
:class:`~neoleasepool.leasing.lease.LeaseHost` protocol).  Its hot path,
:meth:`LeaseDesk.submit`, takes only the submitting lease's own lock, so
work submitted on different leases never queues on one lock:

* **submit** (any thread): under the lease lock, check that the lease is
  live and before its hard expiry, call ``executor.submit`` on its pool, and
  add the future to the lease's ``pending`` set.  Holding the lease lock
  across ``executor.submit`` is what makes the check and the count one
  step: a release, revocation or stop of *this* lease (which takes the same
  lock) either comes first, and the submission fails with
  ``LeaseExpiredError``, or comes after, and sees the future as pending.
* **done-callback** (the executor's worker or management thread, or the
  submitting thread if the future is already done): under the lease lock,
  drop the future from ``pending``; if that drains a released lease, mark
  it ``SETTLING`` and ask the loop to take the pool back.  A call that
  failed because its pool broke latches ``Pool.broken`` and asks the loop
  to replace the pool.  A callback never takes the manager lock and never
  shuts a pool down: it may run on the very thread a shutdown would join.
* **grant, release, drain** (the loop): manager-wide changes, under the
  manager lock and then the lease lock, in the order that
  :mod:`.pools` sets out.

A lease's pool comes back only when no unfinished future of it is left.
``concurrent.futures`` wakes a ``result()`` waiter before it runs the
done-callbacks, so a release can come while ``pending`` still holds
futures that have finished: a release counts only futures not ``done()``.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import secrets
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from .._util.limits import Limits, TimeLimited, split_limits
from .._util.loops import LoopBinding
from ..backends.base import StoppingExecutor
from ..exceptions import LeaseExpiredError, LeasePoolNotStartedError
from .lease import ExecutorLease
from .pools import Phase, PoolSet
from .records import LeaseRecord, LeaseState, Pool

__all__ = ["THREAD_SAFE_HINT", "LeaseDesk"]

THREAD_SAFE_HINT = (
    "run_coroutine_threadsafe() on the manager's loop, or the supervised facade "
    "from task_supervisor.create_lease_manager()"
)


class LeaseDesk:
    """Grants a manager's leases and serves them.

    Args:
        pools: The manager's pool set.
        binding: The manager's loop binding.
        grace_seconds: Time after soft expiry before revocation.
        logger: Where lease events are logged.
    """

    def __init__(
        self,
        pools: PoolSet,
        binding: LoopBinding,
        grace_seconds: float,
        logger: logging.Logger,
        carries_context: bool = False,
    ) -> None:
        #: ``lease.run`` calls run in the caller's ``contextvars`` context
        #: (the backend runs calls in this process, on threads).
        self.carries_context = carries_context
        self._pools = pools
        self._binding = binding
        self._grace_seconds = grace_seconds
        self._logger = logger
        self._token = secrets.token_hex(3)
        self._lease_numbers = itertools.count(1)

    def __repr__(self) -> str:
        return f"<LeaseDesk {self._token} leases={len(self._pools.leases)}>"

    # ------------------------------------------------------- the loop side

    def grant(self, pool: Pool, owner: str | None, seconds: float) -> ExecutorLease:
        """Lend ``pool`` (taken from the pool set) as a new lease; loop only.

        Raises:
            LeasePoolNotStartedError: If the manager began to stop meanwhile.
        """
        pools = self._pools
        lease_id = f"{self._token}-{next(self._lease_numbers)}"
        record = LeaseRecord(
            lease_id, owner, pool, time.monotonic(), seconds, self._grace_seconds,
            self._future_done,
        )
        with pools.lock:
            if pools.phase is not Phase.RUNNING:
                pools.settle_locked(pool)
                raise LeasePoolNotStartedError(
                    f"LeasedExecutorManager is not started (it is {pools.phase.value})"
                )
            if pool.broken:  # it broke on its way here: never lend it
                pools.retire_locked(pool, terminate=True, cancel_futures=True)
                record.attach(pools.create_locked())  # nobody else knows the record yet
            pools.lend_locked(record)
        if self._logger.isEnabledFor(logging.DEBUG):
            self._logger.debug(
                "leased pool=%s lease_id=%s owner=%s seconds=%s", record.pool.index,
                lease_id, owner, seconds,
            )
        return ExecutorLease(self, record)

    async def release_record(self, record: LeaseRecord) -> None:
        """Release a lease (see :meth:`ExecutorLease.release`); idempotent.

        Raises:
            WrongLoopError: If awaited on another loop.
        """
        if record.state is not LeaseState.LIVE:
            return  # also after revocation or the manager's stop
        self._binding.require_owner("release", THREAD_SAFE_HINT)
        self.release_now(record)

    def release_now(self, record: LeaseRecord) -> None:
        """End a live lease now, or let it drain if work is still pending."""
        pools = self._pools
        with pools.lock:
            with record.lock:
                if record.state is not LeaseState.LIVE:
                    return
                if record.still_pending_locked():
                    record.state = LeaseState.DRAINING
                    self._logger.debug(
                        "lease draining lease_id=%s pending=%s", record.lease_id,
                        len(record.pending),
                    )
                    return
                record.state = LeaseState.DONE
            pools.end_lease_locked(record)

    def _finish_drain(self, record: LeaseRecord) -> None:
        """On the loop: a draining lease's last future finished."""
        pools = self._pools
        with pools.lock:
            with record.lock:
                if record.state is not LeaseState.SETTLING:
                    return  # revoked, or the manager stopped, meanwhile
                record.state = LeaseState.DONE
            pools.end_lease_locked(record)

    def owner_loop(self, method: str) -> asyncio.AbstractEventLoop:
        """The manager's loop, if the caller runs on it.

        Raises:
            LeaseExpiredError: If the manager is not running any more.
            WrongLoopError: If called from another loop or thread.
        """
        if self._binding.loop is None:
            raise LeaseExpiredError(
                f"Executor lease is no longer active ({method}(): its manager is "
                f"{self._pools.phase.value})"
            )
        return self._binding.require_owner(method, THREAD_SAFE_HINT)

    # ----------------------------------------------------- any thread

    def submit(
        self,
        record: LeaseRecord,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        then: Callable[[Future[Any]], None] | None = None,
        limits: Limits | None = None,
        name: str | None = None,
    ) -> Future[Any]:
        """Submit to the lease's pool; thread-safe.

        ``then(future)`` runs after the manager's own done-callback, in the
        same callback. ``limits`` (time limits) go to a pool that enforces
        them (:class:`~neoleasepool.backends.StoppingExecutor`); ``name``
        names the call in its errors.

        Raises:
            LeaseExpiredError: If the lease is not live, or past its hard
                expiry.
        """
        with record.lock:
            if record.state is not LeaseState.LIVE:
                raise LeaseExpiredError(_ended(record))
            if time.monotonic() >= record.hard_expires_at:
                raise LeaseExpiredError(
                    f"Executor lease expired and was revoked (lease {record.lease_id} "
                    "passed its hard expiry; acquire a new lease)"
                )
            pool, on_done = record.pool, record.on_done
            try:
                future = _submit(pool.executor, fn, args, kwargs, limits, name)
            except Exception as exc:
                self._note_failure(pool, exc)
                raise
            record.pending.add(future)
        # Outside the lock: the callback runs at once if the future is done.
        if then is None:
            future.add_done_callback(on_done)
        else:
            future.add_done_callback(functools.partial(_done_then, on_done, then))
        return future

    def _future_done(self, record: LeaseRecord, pool: Pool, future: Future[Any]) -> None:
        """Done-callback of every submitted future; runs on any thread.

        The future leaves ``pending`` even if checking its failure raises (a
        bug): a lease waiting to drain must never wait for it.
        """
        try:
            if not future.cancelled():
                exc = future.exception()
                if exc is not None:
                    self._note_failure(pool, exc)
        finally:
            with record.lock:
                record.pending.discard(future)
                drained = record.state is LeaseState.DRAINING and not record.pending
                if drained:
                    record.state = LeaseState.SETTLING
            if drained:
                self._call_on_loop(self._finish_drain, record)

    def _note_failure(self, pool: Pool, exc: BaseException) -> None:
        """Have ``pool`` replaced if ``exc`` says it broke; any thread."""
        session = self._pools.session
        if session is not None and session.is_broken(exc) and pool.mark_broken():
            self._call_on_loop(self._pools.replace_broken, pool)

    def _call_on_loop(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._binding.loop
        if loop is None:
            return  # stopped: the stop already accounted for every pool
        if self._binding.on_loop_thread():
            loop.call_soon(fn, *args)
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass  # the loop is closed; stop() already accounted for the pool


def _done_then(
    on_done: Callable[[Future[Any]], None],
    then: Callable[[Future[Any]], None],
    future: Future[Any],
) -> None:
    on_done(future)
    then(future)


def _ended(record: LeaseRecord) -> str:
    """Why a lease takes no more work, in leasepool's words first."""
    if record.state is LeaseState.DRAINING:
        rule = "Executor lease has been released"
    else:
        rule = "Executor lease is no longer active"
    return f"{rule} (lease {record.lease_id} is {record.state.value}; acquire a new lease)"


def _submit(
    executor: Executor,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    limits: Limits | None,
    name: str | None,
) -> Future[Any]:
    """``executor.submit``; with time limits where the pool enforces them.

    A :class:`~neoleasepool.time_limited` function brings its own limits.
    A pool that cannot stop a call runs it without them (``doc/limits.md``).
    """
    if limits is None and type(fn) is TimeLimited:
        fn, limits = split_limits(fn)
    if limits is not None and isinstance(executor, StoppingExecutor):
        timeout, soft_timeout = limits
        return executor.submit_limited(
            fn, args, kwargs, timeout=timeout, soft_timeout=soft_timeout, name=name
        )
    return executor.submit(fn, *args, **kwargs)
