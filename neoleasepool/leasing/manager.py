"""The lease manager: a bounded, adaptively sized set of pools (layer 2).

A :class:`LeasedExecutorManager` owns up to ``max_pools`` executors
("pools") of one backend and lends each to one holder at a time as an
:class:`~neoleasepool.lease.ExecutorLease`.  Think of it as a rack of
tools with a sign-out sheet: a borrower signs a tool out for a stated time,
must bring it back, and is chased (the lease revoked, the tool replaced) if
they keep it past the time plus a grace period.

Sizing: the manager keeps ``target`` pools ready, where the target follows
the sizing rule in :mod:`neoleasepool.sizing`; leases beyond the target
create pools on demand up to ``max_pools``, and such surplus pools are shut
down when they come back.  A background *checker* task wakes for the next
hard expiry, for :meth:`LeasedExecutorManager.notify_scale_changed`, and at
the latest every ``check_interval`` seconds.

Threads: the manager belongs to the event loop that started it.  Its
state is guarded by one lock, because lease executors accept work from any
thread and completion callbacks arrive on worker threads; everything that
touches asyncio objects (waiters, the checker) runs on the owning loop.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import itertools
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from .._util.loops import LoopBinding
from .._util.threads import run_in_thread
from .._util.validation import check_duration, check_optional_timeout
from ..backends.base import BackendSession, ExecutorBackend, PoolSpec
from ..backends.process_logging import ProcessLoggingConfig
from ..exceptions import (
    LeaseExpiredError,
    LeasePoolNotStartedError,
    LeaseUnavailableError,
    WrongLoopError,
)
from ..types import SizeProvider, Stats
from .lease import ExecutorLease, LeaseRecord, LeaseState, Pool
from .options import manager_options
from .reaper import PoolReaper
from .sizing import read_units, target_pools

__all__ = ["LeasedExecutorManager"]

#: After a bounded stop kills process workers, how long it waits for their
#: pools to finish shutting down.
_KILL_GRACE_SECONDS = 5.0

_THREAD_SAFE_HINT = (
    "run_coroutine_threadsafe() on the manager's loop, or the supervised facade "
    "from task_supervisor.create_lease_manager()"
)


class _Phase(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


class LeasedExecutorManager:
    """Lends a bounded, adaptively sized set of executors as expiring leases.

    Args:
        backend: ``"thread"``, ``"process"``, ``"interpreter"`` (Python
            3.14+), an :class:`~neoleasepool.backends.ExecutorBackend`, or
            the name of a backend added with
            :func:`~neoleasepool.backends.register_backend`.
        max_pools: Most pools this manager may own at once.
        min_pools: Fewest pools it keeps ready.
        units_per_pool: Units of ``size_provider`` served by one pool.
        size_provider: Callable returning the current unit count; called on
            the manager's loop by the checker, and on the calling thread by
            ``desired_executor_count()`` and ``stats()``, so it must be
            thread-safe (``len()`` of a set is).  ``None`` means zero units.
        check_interval: Longest time between two checker passes, seconds.
        default_lease_seconds: Lease duration when ``acquire()`` gets none.
        lease_grace_seconds: Time after soft expiry before revocation.
        workers_per_pool: Workers of each pool (``max_workers``).
        name_prefix: Prefix for pool and thread names.
        logger: Logger for lifecycle and checker messages.
        process_logging: Worker log forwarding (process backend only).
        forward_process_logs: Shortcut for ``process_logging`` with
            ``enabled=True``.
        process_log_level: Worker root logger level for the shortcut.
        process_log_target_logger: Parent logger for the shortcut.
        clear_process_log_handlers: Clear worker root handlers (shortcut).
        surplus_idle_seconds: How long a pool above the target may stay idle
            after its lease ends, in case work comes back, before it is shut
            down.  ``0`` (the default, as leasepool) shuts it down at once;
            a few seconds avoids rebuilding pools (costly for processes) under
            bursty load.
        **executor_kwargs: Passed to every executor's constructor (for the
            process backend: ``initializer``, ``initargs``, ``mp_context``,
            ``max_tasks_per_child``...).

    Raises:
        ValueError: If an argument is out of range (the message names it),
            process logging is asked for twice or on another backend, or an
            executor option is unknown.
        UnsupportedBackendError: If the backend is unknown or unavailable.
    """

    def __init__(
        self,
        *,
        backend: ExecutorBackend | str = ExecutorBackend.THREAD,
        max_pools: int,
        min_pools: int = 1,
        units_per_pool: int = 10,
        size_provider: SizeProvider | None = None,
        check_interval: float = 120.0,
        default_lease_seconds: float = 300.0,
        lease_grace_seconds: float = 15.0,
        workers_per_pool: int = 4,
        name_prefix: str = "leasepool",
        logger: logging.Logger | None = None,
        process_logging: ProcessLoggingConfig | None = None,
        forward_process_logs: bool = False,
        process_log_level: int | str = logging.INFO,
        process_log_target_logger: logging.Logger | None = None,
        clear_process_log_handlers: bool = True,
        surplus_idle_seconds: float = 0.0,
        **executor_kwargs: Any,
    ) -> None:
        options = manager_options(
            backend=backend,
            max_pools=max_pools,
            min_pools=min_pools,
            units_per_pool=units_per_pool,
            size_provider=size_provider,
            check_interval=check_interval,
            default_lease_seconds=default_lease_seconds,
            lease_grace_seconds=lease_grace_seconds,
            workers_per_pool=workers_per_pool,
            name_prefix=name_prefix,
            logger=logger,
            process_logging=process_logging,
            forward_process_logs=forward_process_logs,
            process_log_level=process_log_level,
            process_log_target_logger=process_log_target_logger,
            clear_process_log_handlers=clear_process_log_handlers,
            surplus_idle_seconds=surplus_idle_seconds,
            executor_kwargs=executor_kwargs,
        )
        self._backend = options.backend
        self._max_pools = options.max_pools
        self._min_pools = options.min_pools
        self._units_per_pool = options.units_per_pool
        self._workers_per_pool = options.workers_per_pool
        self._size_provider = options.size_provider
        self._check_interval = options.check_interval
        self._default_lease_seconds = options.default_lease_seconds
        self._grace_seconds = options.grace_seconds
        self._surplus_idle = options.surplus_idle_seconds
        self._name_prefix = options.name_prefix
        self._logger = options.logger
        self._process_logging = options.process_logging
        self._executor_kwargs = options.executor_kwargs

        self._lock = threading.Lock()
        self._binding = LoopBinding("LeasedExecutorManager")
        self._phase = _Phase.NEW
        self._session: BackendSession | None = None
        self._reaper: PoolReaper | None = None
        self._idle: deque[Pool] = deque()
        self._leases: dict[str, LeaseRecord] = {}
        self._waiters: deque[asyncio.Future[Pool]] = deque()
        # Pools handed to a waiter whose acquire() has not resumed yet: owned,
        # but neither idle nor leased, and they count against max_pools.
        self._handed_over = 0
        self._target = self._min_pools
        self._wakeup: asyncio.Event | None = None
        self._checker: asyncio.Task[None] | None = None
        self._checker_due = 0.0
        self._stopped: asyncio.Future[None] | None = None
        self._pool_numbers = itertools.count(1)
        self._lease_numbers = itertools.count(1)
        self._token = secrets.token_hex(3)
        self._counts = dict.fromkeys(
            (
                "leases_granted",
                "leases_released",
                "leases_revoked",
                "pools_created",
                "pools_retired",
                "pools_broken",
            ),
            0,
        )

    def __repr__(self) -> str:
        with self._lock:
            return (
                f"<LeasedExecutorManager {self._backend.name} {self._phase.value} "
                f"leased={len(self._leases)} idle={len(self._idle)} "
                f"target={self._target} max={self._max_pools} "
                f"waiting={len(self._waiters)}>"
            )

    # ------------------------------------------------------------------ info

    @property
    def backend(self) -> str:
        """The backend's name (``"thread"``, ``"process"``...)."""
        return self._backend.name

    @property
    def max_pools(self) -> int:
        return self._max_pools

    @property
    def min_pools(self) -> int:
        return self._min_pools

    @property
    def workers_per_pool(self) -> int:
        return self._workers_per_pool

    @property
    def started(self) -> bool:
        """Whether the manager is running (started and not stopping)."""
        return self._phase is _Phase.RUNNING

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop the manager is bound to while started."""
        return self._binding.loop

    @property
    def available_count(self) -> int:
        """Idle pools, ready to be leased."""
        return len(self._idle)

    @property
    def leased_count(self) -> int:
        """Pools held by leases, including leases still draining."""
        return len(self._leases)

    @property
    def total_count(self) -> int:
        """Pools owned: idle plus leased (plus any on their way to a waiter)."""
        with self._lock:
            return self._owned_locked()

    def _owned_locked(self) -> int:
        return len(self._idle) + len(self._leases) + self._handed_over

    def owns_thread(self, thread: threading.Thread) -> bool:
        """Whether ``thread`` is a worker thread of one of this manager's
        pools (thread backend), where a blocking stop must not wait for
        itself."""
        with self._lock:
            executors = [p.executor for p in self._idle]
            executors += [r.pool.executor for r in self._leases.values()]
        if self._reaper is not None:
            executors += self._reaper.executors()
        return any(thread in getattr(e, "_threads", ()) for e in executors)

    def desired_executor_count(self) -> int:
        """The sizing rule's answer right now (calls ``size_provider``)."""
        return target_pools(
            read_units(self._size_provider, self._logger),
            min_pools=self._min_pools,
            max_pools=self._max_pools,
            units_per_pool=self._units_per_pool,
        )

    def stats(self) -> Stats:
        """A JSON-serialisable snapshot; safe from any thread."""
        desired = self.desired_executor_count()
        now = time.monotonic()
        with self._lock:
            leases = [
                {
                    "lease_id": r.lease_id,
                    "owner": r.owner,
                    "state": r.state.value,
                    "pending": len(r.pending),
                    "seconds_until_soft_expiry": max(0.0, r.soft_expires_at - now),
                    "seconds_until_hard_expiry": max(0.0, r.hard_expires_at - now),
                }
                for r in self._leases.values()
            ]
            return {
                "backend": self._backend.name,
                "state": self._phase.value,
                "desired": desired,
                "target": self._target,
                "min_pools": self._min_pools,
                "max_pools": self._max_pools,
                "available": len(self._idle),
                "leased": len(self._leases),
                "total": self._owned_locked(),
                "waiting": len(self._waiters),
                "workers_per_pool": self._workers_per_pool,
                "retiring": self._reaper.retiring if self._reaper else 0,
                **self._counts,
                "backend_details": self._session.describe() if self._session else {},
                "leases": leases,
            }

    # ------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Start the manager on the running loop: create the target pools and
        the checker.  Starting a running manager again is a no-op.

        Raises:
            WrongLoopError: If started on another loop, or while stopping.
        """
        if self._phase is _Phase.RUNNING:
            self._binding.require_owner("start", "the loop that started it")
            return
        if self._phase is _Phase.STOPPING:
            raise WrongLoopError("LeasedExecutorManager.start() called while it is stopping")
        loop = self._binding.bind()
        session = self._backend.open(
            self._executor_kwargs,
            logger=self._logger,
            process_logging=self._process_logging,
        )
        try:
            self._session = session
            self._reaper = PoolReaper(session, self._name_prefix, self._logger)
            self._target = self.desired_executor_count()
            with self._lock:
                while len(self._idle) < self._target:
                    self._idle.append(self._create_pool_locked())
        except BaseException:
            for pool in self._idle:
                pool.executor.shutdown(wait=True, cancel_futures=True)
            self._idle.clear()
            session.close()
            self._session = self._reaper = None
            self._binding.unbind()
            raise
        self._wakeup = asyncio.Event()
        self._stopped = loop.create_future()
        self._phase = _Phase.RUNNING
        self._checker = loop.create_task(
            self._checker_loop(), name=f"{self._name_prefix}-checker"
        )
        self._logger.info(
            "manager started backend=%s pools=%s max_pools=%s workers_per_pool=%s",
            self._backend.name,
            self._target,
            self._max_pools,
            self._workers_per_pool,
        )

    async def stop(self, *, drain: bool = True, timeout: float | None = None) -> None:
        """Stop the manager and shut down every pool it owns.

        Waiters in :meth:`acquire` fail with
        :class:`~neoleasepool.exceptions.LeasePoolNotStartedError`; leases
        stop accepting work.  By default the manager then *drains*: it waits
        for work already submitted to finish before shutting pools down.
        Every pool is joined before this returns, off the event loop.
        Stopping a stopped manager is a no-op.

        Args:
            drain: Wait for submitted work (``False`` cancels what has not
                started; calls already running are still joined, up to
                ``timeout`` if one is given).
            timeout: Most seconds the whole stop waits for work to end (the
                drain, or with ``drain=False`` the calls already running):
                work still running then is cancelled, and process workers
                are killed (threads cannot be; they are left to finish).

        Raises:
            WrongLoopError: If awaited on another loop.
        """
        if self._phase in (_Phase.NEW, _Phase.STOPPED):
            return
        self._binding.require_owner("stop", _THREAD_SAFE_HINT)
        timeout = check_optional_timeout("timeout", timeout)
        assert self._stopped is not None
        if self._phase is _Phase.STOPPING:
            await asyncio.shield(self._stopped)
            return
        self._phase = _Phase.STOPPING
        try:
            await self._shutdown(drain, timeout)
        finally:
            self._phase = _Phase.STOPPED
            self._binding.unbind()
            if not self._stopped.done():
                self._stopped.set_result(None)
        self._logger.info("manager stopped backend=%s", self._backend.name)

    async def _shutdown(self, drain: bool, timeout: float | None) -> None:
        closed = LeasePoolNotStartedError("LeasedExecutorManager is stopping")
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(closed)
        # Leases stop taking work before the first await of the stop, so that
        # nothing is accepted once the manager says it is stopping.
        with self._lock:
            pending = [f for r in self._leases.values() for f in r.pending if not f.done()]
            for record in self._leases.values():
                record.state = LeaseState.DONE
        if self._checker is not None:
            self._checker.cancel()
            await asyncio.gather(self._checker, return_exceptions=True)
            self._checker = None
        timed_out = False
        deadline = None if timeout is None else time.monotonic() + timeout
        if drain and pending:
            loop = asyncio.get_running_loop()
            waits = [asyncio.wrap_future(f, loop=loop) for f in pending]
            done, not_done = await asyncio.wait(waits, timeout=timeout)
            # The wrappers are ours: retrieve what they hold, or asyncio logs
            # "Future exception was never retrieved" (a crash, a killed pool).
            for wrapper in done:
                if not wrapper.cancelled():
                    wrapper.exception()
            for wrapper in not_done:
                wrapper.cancel()  # also cancels the call if it has not started
            timed_out = bool(not_done)
            if timed_out:
                self._logger.warning(
                    "manager stop timed out with %s call(s) running; cancelling "
                    "them and killing process workers", len(not_done)
                )
        with self._lock:
            pools = list(self._idle) + [r.pool for r in self._leases.values()]
            self._idle.clear()
            self._leases.clear()
            for pool in pools:
                pool.lease = None
                self._retire_locked(pool, terminate=timed_out, cancel_futures=True)
        reaper, session = self._reaper, self._session
        assert reaper is not None and session is not None

        # A bounded stop stays bounded, also when a pool retired earlier (a
        # revoked lease's) is still stuck in a call that threads cannot kill.
        join_timeout = None if deadline is None else max(0.0, deadline - time.monotonic())

        def _join_and_close() -> None:
            if not reaper.join(join_timeout):
                # Out of time (with or without a drain): kill the process
                # workers still running calls, then give their pools a moment.
                reaper.terminate_remaining()
                if not reaper.join(_KILL_GRACE_SECONDS):
                    self._logger.warning(
                        "manager stop: %s pool(s) still shutting down after the "
                        "timeout (threads cannot be killed); not waiting for them",
                        reaper.retiring,
                    )
            session.close()

        await run_in_thread(_join_and_close, name=f"{self._name_prefix}-stop")
        self._session = self._reaper = None

    # --------------------------------------------------------------- leasing

    def _owner_loop(self, method: str) -> asyncio.AbstractEventLoop:
        if self._binding.loop is None:
            raise LeaseExpiredError(
                f"{method}(): the lease ended because its manager is "
                f"{self._phase.value}"
            )
        return self._binding.require_owner(method, _THREAD_SAFE_HINT)

    def _require_running(self) -> None:
        if self._phase is not _Phase.RUNNING:
            raise LeasePoolNotStartedError(
                f"LeasedExecutorManager is {self._phase.value}; "
                "await manager.start() first"
            )

    async def acquire(
        self,
        *,
        lease_seconds: float | None = None,
        owner: str | None = None,
        wait: bool = True,
        timeout: float | None = None,
    ) -> ExecutorLease:
        """Lease one pool.

        Args:
            lease_seconds: Time until soft expiry (default:
                ``default_lease_seconds``).
            owner: A label shown in ``stats()`` and logs.
            wait: Wait for a pool when all ``max_pools`` are leased; if
                ``False``, fail at once instead.
            timeout: Most seconds to wait (``None``: no limit).

        Returns:
            The lease; release it, or use it with ``async with``.

        Raises:
            LeasePoolNotStartedError: If the manager is not running, or
                stops while waiting.
            LeaseUnavailableError: If ``wait=False`` and no pool is free.
            TimeoutError: If ``timeout`` passes first.
            WrongLoopError: If awaited on another loop.
            ValueError: If ``lease_seconds`` or ``timeout`` is invalid.
        """
        self._require_running()
        loop = self._binding.require_owner("acquire", _THREAD_SAFE_HINT)
        seconds = (
            self._default_lease_seconds
            if lease_seconds is None
            else check_duration("lease_seconds", lease_seconds)
        )
        timeout = check_optional_timeout("timeout", timeout)
        with self._lock:
            pool = self._take_pool_locked()
        if pool is None:
            if not wait:
                raise LeaseUnavailableError(
                    f"all {self._max_pools} pools are leased (max_pools="
                    f"{self._max_pools}); pass wait=True to wait for one"
                )
            pool = await self._wait_for_pool(loop, timeout)
        return self._grant(pool, owner, seconds)

    async def _wait_for_pool(
        self, loop: asyncio.AbstractEventLoop, timeout: float | None
    ) -> Pool:
        waiter: asyncio.Future[Pool] = loop.create_future()
        self._waiters.append(waiter)
        timer = None
        if timeout is not None:
            timer = loop.call_later(timeout, _expire_waiter, waiter, timeout)
        try:
            pool = await waiter
        except TimeoutError:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            raise
        except asyncio.CancelledError:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # A pool arrived just as we were cancelled: give it back.
                with self._lock:
                    self._handed_over -= 1
                    self._settle_pool_locked(waiter.result())
            raise
        finally:
            if timer is not None:
                timer.cancel()
        with self._lock:
            self._handed_over -= 1
        return pool

    def _grant(self, pool: Pool, owner: str | None, seconds: float) -> ExecutorLease:
        now = time.monotonic()
        lease_id = f"{self._token}-{next(self._lease_numbers)}"
        record = LeaseRecord(lease_id, owner, pool, now, seconds, self._grace_seconds)
        with self._lock:
            if self._phase is not _Phase.RUNNING:
                self._settle_pool_locked(pool)
                raise LeasePoolNotStartedError("LeasedExecutorManager is stopping")
            if pool.broken:  # it broke on its way here: never lend it
                self._retire_locked(pool, terminate=True, cancel_futures=True)
                pool = record.pool = self._create_pool_locked()
            pool.lease = record
            self._leases[lease_id] = record
            self._counts["leases_granted"] += 1
        if record.hard_expires_at < self._checker_due and self._wakeup is not None:
            self._wakeup.set()
        if self._logger.isEnabledFor(logging.DEBUG):
            self._logger.debug(
                "leased pool=%s lease_id=%s owner=%s seconds=%s", pool.index, lease_id,
                owner, seconds,
            )
        return ExecutorLease(self, record)

    async def release(self, lease_id: str) -> None:
        """Release the lease with this id (see :meth:`ExecutorLease.release`).

        Unknown or already released ids are ignored.

        Raises:
            WrongLoopError: If awaited on another loop.
        """
        record = self._leases.get(lease_id)
        if record is not None:
            await self._release_record(record)

    async def _release_record(self, record: LeaseRecord) -> None:
        if record.state is not LeaseState.LIVE:
            return  # idempotent, also after revocation or the manager's stop
        self._binding.require_owner("release", _THREAD_SAFE_HINT)
        self._release_now(record)

    def _release_now(self, record: LeaseRecord) -> None:
        with self._lock:
            if record.state is not LeaseState.LIVE:
                return
            if record.pending:
                record.pending = {f for f in record.pending if not f.done()}
            if record.pending:
                record.state = LeaseState.DRAINING
                self._logger.debug(
                    "lease draining lease_id=%s pending=%s", record.lease_id,
                    len(record.pending),
                )
                return
            self._end_lease_locked(record)

    def _end_lease_locked(self, record: LeaseRecord) -> None:
        record.state = LeaseState.DONE
        del self._leases[record.lease_id]
        self._counts["leases_released"] += 1
        self._settle_pool_locked(record.pool)

    def _finish_drain(self, record: LeaseRecord) -> None:
        """On the loop: a draining lease's last future finished."""
        with self._lock:
            if record.state is LeaseState.SETTLING:
                self._end_lease_locked(record)

    # ------------------------------------------------------ work submission

    def _submit(
        self,
        record: LeaseRecord,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        then: Callable[[Future[Any]], None] | None = None,
    ) -> Future[Any]:
        """Submit to the lease's pool; ``then(future)`` runs after the
        manager's own done-callback, in the same callback."""
        with self._lock:
            if record.state is not LeaseState.LIVE:
                raise LeaseExpiredError(
                    f"lease {record.lease_id} is {record.state.value}; acquire a new lease"
                )
            if time.monotonic() >= record.hard_expires_at:
                raise LeaseExpiredError(
                    f"lease {record.lease_id} passed its hard expiry; acquire a new lease"
                )
            pool = record.pool
            try:
                future = pool.executor.submit(fn, *args, **kwargs)
            except Exception as exc:
                assert self._session is not None
                if self._session.is_broken(exc) and not pool.broken:
                    pool.broken = True
                    self._call_on_loop(self._replace_broken, pool)
                raise
            record.pending.add(future)
        if then is None:
            future.add_done_callback(pool.on_done)
        else:
            future.add_done_callback(functools.partial(self._future_done_then, pool, then))
        return future

    def _future_done_then(
        self, pool: Pool, then: Callable[[Future[Any]], None], future: Future[Any]
    ) -> None:
        self._future_done(pool, future)
        then(future)

    def _future_done(self, pool: Pool, future: Future[Any]) -> None:
        """Done-callback of every submitted future; runs on any thread."""
        broken = False
        if not future.cancelled():
            exc = future.exception()
            session = self._session
            broken = exc is not None and session is not None and session.is_broken(exc)
        drained = None
        with self._lock:
            if broken and not pool.broken:
                pool.broken = True
            else:
                broken = False
            record = pool.lease
            if record is None:
                # The lease ended first (its holder saw this result before the
                # callbacks ran): a broken pool that went back idle must not
                # be lent again.  Revoked pools are already retired.
                if broken and pool in self._idle:
                    self._call_on_loop(self._replace_broken, pool)
                return
            record.pending.discard(future)
            if record.state is LeaseState.DRAINING and not record.pending:
                record.state = LeaseState.SETTLING
                drained = record
        if broken:
            self._call_on_loop(self._replace_broken, pool)
        if drained is not None:
            self._call_on_loop(self._finish_drain, drained)

    def _call_on_loop(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._binding.loop
        if loop is None:
            return
        if self._binding.on_loop_thread():
            loop.call_soon(fn, *args)
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass  # the loop is closed; stop() already accounted for the pool

    def _replace_broken(self, pool: Pool) -> None:
        """On the loop: swap a broken pool, leased or idle, for a fresh one."""
        with self._lock:
            self._counts["pools_broken"] += 1
            record = pool.lease
            if self._phase is not _Phase.RUNNING:
                return
            if record is None:
                if pool in self._idle:
                    self._idle.remove(pool)
                    self._retire_locked(pool, terminate=True, cancel_futures=True)
                    if self._owned_locked() < self._target:
                        self._idle.append(self._create_pool_locked())
                    self._logger.warning("idle pool broken, retired pool=%s", pool.index)
                return
            if record.pool is pool and record.state is not LeaseState.DONE:
                replacement = self._create_pool_locked()
                replacement.lease = record
                record.pool = replacement
                self._retire_locked(pool, terminate=True, cancel_futures=True)
                self._logger.warning(
                    "pool broken, replaced pool=%s replacement=%s lease_id=%s",
                    pool.index, replacement.index, record.lease_id,
                )

    # ---------------------------------------------------------------- pools

    def _create_pool_locked(self) -> Pool:
        assert self._session is not None
        index = next(self._pool_numbers)
        spec = PoolSpec(index, self._workers_per_pool, f"{self._name_prefix}-{index}")
        pool = Pool(self._session.create(spec), index, self._future_done)
        self._counts["pools_created"] += 1
        self._logger.debug("pool created pool=%s backend=%s", index, self._backend.name)
        return pool

    def _retire_locked(self, pool: Pool, *, terminate: bool, cancel_futures: bool) -> None:
        assert self._reaper is not None
        self._counts["pools_retired"] += 1
        self._reaper.retire(pool.executor, terminate=terminate, cancel_futures=cancel_futures)
        self._logger.debug("pool retired pool=%s terminate=%s", pool.index, terminate)

    def _take_pool_locked(self) -> Pool | None:
        if self._idle:
            return self._idle.pop()
        if self._owned_locked() < self._max_pools:
            return self._create_pool_locked()
        return None

    def _settle_pool_locked(self, pool: Pool) -> None:
        """A pool came back: hand it to a waiter, keep it idle, or retire it."""
        pool.lease = None
        if pool.broken or self._phase is not _Phase.RUNNING:
            self._retire_locked(pool, terminate=pool.broken, cancel_futures=True)
            self._serve_waiters_locked()
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(pool)
                self._handed_over += 1
                return
        pool.idle_since = time.monotonic()
        if self._owned_locked() >= self._target and not self._surplus_idle:
            self._retire_locked(pool, terminate=False, cancel_futures=False)
            return
        self._idle.append(pool)
        # A surplus pool is kept for surplus_idle_seconds in case work comes
        # back, then retired by the checker (woken for it if need be).
        surplus = self._owned_locked() > self._target
        if surplus and self._wakeup and pool.idle_since + self._surplus_idle < self._checker_due:
            self._call_on_loop(self._wakeup.set)

    def _serve_waiters_locked(self) -> None:
        while self._waiters:
            if self._waiters[0].done():
                self._waiters.popleft()
                continue
            pool = self._take_pool_locked()
            if pool is None:
                return
            self._waiters.popleft().set_result(pool)
            self._handed_over += 1

    # -------------------------------------------------------------- checker

    def notify_scale_changed(self) -> None:
        """Wake the checker now to re-read ``size_provider``.

        Safe to call from any thread; a no-op while the manager is not
        running.
        """
        wakeup = self._wakeup
        if wakeup is None or self._phase is not _Phase.RUNNING:
            return
        self._call_on_loop(wakeup.set)

    async def _checker_loop(self) -> None:
        loop = asyncio.get_running_loop()
        wakeup = self._wakeup
        assert wakeup is not None
        while True:
            wakeup.clear()
            try:
                delay = self._check()
            except Exception:
                self._logger.exception("manager check failed; retrying later")
                delay = self._check_interval
            self._checker_due = time.monotonic() + delay
            timer = loop.call_later(delay, wakeup.set)
            try:
                await wakeup.wait()
            finally:
                timer.cancel()

    def _check(self) -> float:
        """One checker pass; returns the seconds until the next one is due."""
        target = self.desired_executor_count()
        now = time.monotonic()
        with self._lock:
            self._target = target
            self._revoke_expired_locked(now)
            self._serve_waiters_locked()
            while self._owned_locked() < target:
                self._idle.append(self._create_pool_locked())
            # Surplus idle pools go, the longest idle first, once they have
            # been idle for surplus_idle_seconds (at once by default).
            next_due = min((r.hard_expires_at for r in self._leases.values()), default=None)
            while self._idle and self._owned_locked() > target:
                oldest = self._idle[0]
                retire_at = oldest.idle_since + self._surplus_idle
                if retire_at > now:
                    next_due = retire_at if next_due is None else min(next_due, retire_at)
                    break
                self._retire_locked(self._idle.popleft(), terminate=False, cancel_futures=False)
        delay = self._check_interval
        if next_due is not None:
            delay = min(delay, max(0.0, next_due - now))
        return delay

    def _revoke_expired_locked(self, now: float) -> None:
        expired = [r for r in self._leases.values() if r.hard_expires_at <= now]
        for record in expired:
            del self._leases[record.lease_id]
            record.state = LeaseState.DONE
            record.pool.lease = None
            self._counts["leases_revoked"] += 1
            self._retire_locked(record.pool, terminate=True, cancel_futures=True)
            self._logger.warning(
                "lease revoked after hard expiry lease_id=%s owner=%s "
                "lease_seconds=%s grace_seconds=%s",
                record.lease_id, record.owner, record.lease_seconds, record.grace_seconds,
            )


def _expire_waiter(waiter: asyncio.Future[Pool], timeout: float) -> None:
    if not waiter.done():
        waiter.set_exception(
            TimeoutError(f"no pool became free within timeout={timeout}s")
        )
