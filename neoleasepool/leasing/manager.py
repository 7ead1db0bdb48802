"""The lease manager: a bounded, adaptively sized set of pools.

A :class:`LeasedExecutorManager` owns up to ``max_pools`` executors
("pools") of one backend and lends each to one holder at a time as an
:class:`~neoleasepool.leasing.lease.ExecutorLease`.  Think of it as a rack
of tools with a sign-out sheet: a borrower signs a tool out for a stated
time, must bring it back, and is chased (the lease revoked, the tool
replaced) if they keep it past the time plus a grace period.

Sizing: the manager keeps ``target`` pools ready, where the target follows
the sizing rule in :mod:`.sizing`; leases beyond the target create pools on
demand up to ``max_pools``, and such surplus pools are shut down when they
come back (after ``surplus_idle_seconds``).

This class is a facade over small parts, each in its own module:

* :mod:`.options`: the arguments, checked at construction;
* :mod:`.pools`: the pool set, the manager lock, and the lock table;
* :mod:`.waiters`: ``acquire()`` calls waiting for a pool;
* :mod:`.desk`: granting leases, submitting their work (under each lease's
  own lock), draining and releasing them;
* :mod:`.checker`: the background task for expiry, revocation and sizing;
* :mod:`.stopping`: the stop, and the join of every pool;
* :mod:`.stats`: the ``stats()`` snapshot and the ``repr``;
* :mod:`.reaper`: shutting retired pools down off the loop.

Threads: the manager belongs to the event loop that started it.  Lease
executors accept work from any thread and completion callbacks arrive on
worker threads; everything that touches asyncio objects (waiters, the
checker) runs on the owning loop.  See ``doc/architecture.md``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from .._util.loops import LoopBinding
from .._util.validation import check_duration, check_optional_timeout
from ..backends.base import ExecutorBackend
from ..backends.process_logging import ProcessLoggingConfig
from ..exceptions import LeasePoolNotStartedError, LeaseUnavailableError, WrongLoopError
from ..types import SizeProvider, Stats
from .checker import Checker
from .desk import THREAD_SAFE_HINT, LeaseDesk
from .lease import ExecutorLease
from .options import ManagerOptions, manager_options
from .pools import Phase, PoolSet
from .reaper import PoolReaper
from .sizing import read_units, target_pools
from .stats import manager_repr, manager_stats
from .stopping import shut_down

__all__ = ["LeasedExecutorManager"]


_BUILT_IN = frozenset(member.value for member in ExecutorBackend)


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
        self._options = options
        self._backend = options.backend
        self._logger = options.logger
        self._assemble(options)

    def _assemble(self, options: ManagerOptions) -> None:
        self._binding = LoopBinding("LeasedExecutorManager")
        self._pools = PoolSet(
            backend_name=options.backend.name,
            min_pools=options.min_pools,
            max_pools=options.max_pools,
            workers_per_pool=options.workers_per_pool,
            name_prefix=options.name_prefix,
            surplus_idle_seconds=options.surplus_idle_seconds,
            logger=options.logger,
        )
        self._leases = self._pools.leases  # the same dict, for inspection
        self._desk = LeaseDesk(
            self._pools, self._binding, options.grace_seconds, options.logger,
            carries_context=self._backend.in_process,
        )
        self._checker = Checker(
            self._pools,
            self.desired_executor_count,
            options.check_interval,
            name=f"{options.name_prefix}-checker",
            broke=self._broke,
        )
        self._crash: BaseException | None = None  # why it broke, if it did
        self._pools.wake_checker_by = self._checker.wake_by
        self._stopped: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return manager_repr(self._pools)

    # ------------------------------------------------------------------ info

    @property
    def backend(self) -> ExecutorBackend | str:
        """The backend: an :class:`ExecutorBackend` member for the built-in
        ones (a ``str`` enum, so ``manager.backend == "thread"`` holds), else
        the registered backend's name."""
        name = self._backend.name
        return ExecutorBackend(name) if name in _BUILT_IN else name

    @property
    def max_pools(self) -> int:
        """Most pools this manager may own at once."""
        return self._options.max_pools

    @property
    def min_pools(self) -> int:
        """Fewest pools it keeps ready."""
        return self._options.min_pools

    @property
    def workers_per_pool(self) -> int:
        """Workers of each pool."""
        return self._options.workers_per_pool

    @property
    def started(self) -> bool:
        """Whether the manager is running (started and not stopping)."""
        return self._pools.phase is Phase.RUNNING

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop the manager is bound to while started."""
        return self._binding.loop

    @property
    def available_count(self) -> int:
        """Idle pools, ready to be leased."""
        return len(self._pools.idle)

    @property
    def leased_count(self) -> int:
        """Pools held by leases, including leases still draining."""
        return len(self._pools.leases)

    @property
    def total_count(self) -> int:
        """Pools owned: idle plus leased (plus any on their way to a waiter)."""
        with self._pools.lock:
            return self._pools.owned_locked()

    def owns_thread(self, thread: threading.Thread) -> bool:
        """Whether ``thread`` is a worker thread of one of this manager's
        pools (thread backend), where a blocking stop must not wait for
        itself."""
        return any(thread in getattr(e, "_threads", ()) for e in self._pools.executors())

    def desired_executor_count(self) -> int:
        """The sizing rule's answer right now (calls ``size_provider``)."""
        options = self._options
        return target_pools(
            read_units(options.size_provider, self._logger),
            min_pools=options.min_pools,
            max_pools=options.max_pools,
            units_per_pool=options.units_per_pool,
        )

    def stats(self) -> Stats:
        """A JSON-serialisable snapshot; safe from any thread."""
        return manager_stats(self._pools, self.desired_executor_count())

    # ------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Start the manager on the running loop: create the target pools and
        the checker.  Starting a running manager again is a no-op.

        Raises:
            WrongLoopError: If started on another loop, or while stopping.
        """
        phase = self._pools.phase
        if phase is Phase.RUNNING:
            self._binding.require_owner("start", "the loop that started it")
            return
        if phase is Phase.BROKEN:
            raise self._broken_error("start")
        if phase is Phase.STOPPING:
            raise WrongLoopError("LeasedExecutorManager.start() called while it is stopping")
        loop = self._binding.bind()
        options = self._options
        try:
            session = self._backend.open(
                options.executor_kwargs,
                logger=self._logger,
                process_logging=options.process_logging,
            )
            reaper = PoolReaper(session, options.name_prefix, self._logger)
            self._pools.open(session, reaper, self.desired_executor_count())
        except BaseException:
            self._pools.abandon()
            self._binding.unbind()
            raise
        self._stopped = loop.create_future()
        self._crash = None
        self._pools.set_phase(Phase.RUNNING)
        self._checker.start(loop)
        self._logger.info(
            "manager started backend=%s pools=%s max_pools=%s workers_per_pool=%s",
            self._backend.name,
            self._pools.target,
            options.max_pools,
            options.workers_per_pool,
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
        if self._pools.phase in (Phase.NEW, Phase.STOPPED):
            return
        self._binding.require_owner("stop", THREAD_SAFE_HINT)
        timeout = check_optional_timeout("timeout", timeout)
        assert self._stopped is not None
        if self._pools.phase is Phase.STOPPING:
            await asyncio.shield(self._stopped)
            return
        self._pools.set_phase(Phase.STOPPING)
        try:
            await shut_down(self._pools, self._checker, drain=drain, timeout=timeout)
        finally:
            self._pools.set_phase(Phase.STOPPED)
            self._binding.unbind()
            if not self._stopped.done():
                self._stopped.set_result(None)
        self._logger.info("manager stopped backend=%s", self._backend.name)

    # --------------------------------------------------------------- leasing

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
        pools = self._pools
        if pools.phase is Phase.BROKEN:
            raise self._broken_error("acquire")
        if pools.phase is not Phase.RUNNING:
            raise LeasePoolNotStartedError(
                f"LeasedExecutorManager is not started (it is {pools.phase.value}; "
                "await manager.start() first)"
            )
        loop = self._binding.require_owner("acquire", THREAD_SAFE_HINT)
        seconds = (
            self._options.default_lease_seconds
            if lease_seconds is None
            else check_duration("lease_seconds", lease_seconds, leasepool=True)
        )
        timeout = check_optional_timeout("timeout", timeout)
        with pools.lock:
            pool = pools.take_locked()
        if pool is None:
            if not wait:
                raise LeaseUnavailableError(
                    f"No executor available; max_pools={pools.max_pools} reached "
                    "(every pool is leased; pass wait=True to wait for one)"
                )
            pool = await pools.waiters.wait(loop, timeout, pools.settle_locked)
        return self._desk.grant(pool, owner, seconds)

    def _broke(self, exc: BaseException) -> None:
        """On the loop: a check pass failed (a bug), so nothing would revoke
        overdue leases or serve waiters: fail the waiters and lend nothing
        until the manager is stopped and started again.  Leases already
        granted keep their pools until they are released."""
        pools = self._pools
        with pools.lock:
            if pools.phase is not Phase.RUNNING:
                return
            pools.phase = Phase.BROKEN
            self._crash = exc
            waiting = len(pools.waiters)
        self._logger.error(
            "manager broken: its checker crashed; failing %s waiting acquire(s) and "
            "refusing new ones until the manager is stopped and started again",
            waiting, exc_info=exc,
        )
        pools.waiters.fail_all(self._broken_error("acquire"))

    def _broken_error(self, method: str) -> LeasePoolNotStartedError:
        error = LeasePoolNotStartedError(
            f"LeasedExecutorManager is broken (its checker crashed: {self._crash!r}); "
            f"stop() it before {method}() can work again"
        )
        error.__cause__ = self._crash
        return error

    async def release(self, lease_id: str) -> None:
        """Release the lease with this id (see :meth:`ExecutorLease.release`).

        Unknown or already released ids are ignored.

        Raises:
            WrongLoopError: If awaited on another loop.
        """
        record = self._pools.leases.get(lease_id)
        if record is not None:
            await self._desk.release_record(record)

    def notify_scale_changed(self) -> None:
        """Wake the checker now to re-read ``size_provider``.

        Safe to call from any thread; a no-op while the manager is not
        running.
        """
        if self._pools.phase is Phase.RUNNING:
            self._checker.notify()
