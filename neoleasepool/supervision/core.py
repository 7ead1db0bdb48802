"""The supervisor core: loops, a task pool and schedulers, and one stop for all.

A :class:`SupervisorCore` owns

* an event loop of its own, running in the thread ``supervisor_<id>_loop``
  (reserved aloop name ``"__supervisor__"``), where schedulers run unless
  they name another loop;
* named aloops (:class:`~neoleasepool.loops.aloop.ALoop`), for async work
  that must not block the supervisor's loop or each other;
* a task pool (``supervisor_<id>_pool`` threads, or any executor you give
  it) behind :meth:`SupervisorCore.spawn`;
* a registry of schedulers (see :mod:`.schedulers`), such as background
  workers, and named async job schedulers (neotasker's async jobs).

The loops come from :class:`~.aloops.ALoopHost`, the registry from
:class:`~.registry.SchedulerHost`, the async job schedulers from
:class:`~.job_host.AsyncJobHost`; this class adds the pool, the start,
and :meth:`SupervisorCore.stop`, which takes all of it down in one call, in
an order that lets each part drain into the next: schedulers (newest
first), then aloops, then the supervisor's loop, then the pool, which is
joined.  The API follows neotasker's supervisor.

The core knows nothing of leases or grinders: ``TaskSupervisor`` (in
:mod:`.supervisor`) adds their factories, and background workers need only
this class.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from .._util.deadlines import deadline_from_wait
from ..loops.aloop import ALoop
from ..types import Stats, WaitArg
from .job_host import AsyncJobHost
from .observer import Observer, make_observer
from .pool import SupervisorPool
from .schedulers import runs_on

__all__ = ["SupervisorCore", "SupervisorInfo"]

logger = logging.getLogger("neoleasepool.supervisor")

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class SupervisorInfo:
    """What :meth:`SupervisorCore.get_info` reports (neotasker's fields)."""

    id: str
    active: bool
    aloops: dict[str, ALoop] = field(default_factory=dict)
    schedulers: dict[str, Any] = field(default_factory=dict)
    async_job_schedulers: dict[str, Any] = field(default_factory=dict)
    pool_min_size: int = 0
    pool_max_size: int = 0


class SupervisorCore(AsyncJobHost):
    """Owns a loop thread, aloops, a task pool and registered schedulers.

    Creating a supervisor starts no thread; :meth:`start` does.  Subclass it
    freely: every part is reached through ordinary methods.

    Args:
        id: Identifier used in thread names and log lines; a random UUID
            when ``None``.
        supervisor_id: neotasker's name for ``id``.
    """

    def __init__(self, id: str | None = None, *, supervisor_id: str | None = None) -> None:
        super().__init__(id, supervisor_id=supervisor_id)
        #: Kept for neotasker compatibility; nothing here waits by polling.
        self.poll_delay = 0.01
        self._state_lock = threading.RLock()  # start/stop transitions
        self._stopped = threading.Event()
        self._stopped.set()
        self._pool = SupervisorPool(f"supervisor_{self.id}_pool")
        self._observer: Observer | None = None  # made on first use (see .observer)

    def __repr__(self) -> str:
        state = "active" if self._active else ("stopping" if self._stopping else "stopped")
        return (
            f"<{type(self).__name__} {self.id!r} {state} aloops={len(self.aloops)} "
            f"schedulers={len(self._schedulers)} "
            f"pool={type(self.thread_pool).__name__} "
            f"{self._pool.min_size}/{self._pool.max_size}>"
        )

    # ------------------------------------------------------------ the pool

    @property
    def thread_pool(self) -> concurrent.futures.Executor:
        """The executor behind :meth:`spawn`; assigning one replaces it."""
        return self._pool.executor

    @thread_pool.setter
    def thread_pool(self, pool: concurrent.futures.Executor) -> None:
        self.set_thread_pool(pool=pool)

    def set_thread_pool(
        self,
        min_size: int | str | None = None,
        max_size: int | None = None,
        pool: concurrent.futures.Executor | None = None,
    ) -> None:
        """Configure the task pool; allowed while running.

        The new pool takes new work at once; the old one finishes what was
        queued on it and is joined when the supervisor stops.

        Args:
            min_size: Threads started with the supervisor: a count, or
                ``"max"`` for ``max_size``.  Default 0.
            max_size: Largest number of threads; default CPU count x 5.
            pool: Any ``concurrent.futures.Executor`` to use instead, a
                ``ProcessPoolExecutor`` included.  The supervisor shuts it
                down at stop.

        Raises:
            ValueError: If a size is out of range or ``max_size < min_size``.
            TypeError: If ``pool`` is not an executor.
        """
        self._pool.configure(min_size, max_size, pool, running=self._active)

    def spawn(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> concurrent.futures.Future[T]:
        """Run ``fn(*args, **kwargs)`` in the task pool; return its future.

        While the supervisor stops, ``spawn`` still works until the pool is
        shut down, so that schedulers can drain into it.

        Raises:
            LeasePoolNotStartedError: If the supervisor is not running.
        """
        if not self._stopping:
            self.require_active("spawn()")
        return self._pool.submit(fn, *args, **kwargs)

    # ------------------------------------------------------ start and stop

    def start(self) -> None:
        """Start the supervisor's loop thread (and prespawn pool threads).

        Starting a running supervisor does nothing.  A stopped supervisor
        can be started again, with a fresh thread pool of the same sizes.
        """
        with self._state_lock:
            if self._active or self._stopping:
                return
            self._pool.ensure_open()
            self._stopped = threading.Event()
            self._start_own_loop()
            self._pool.prespawn()
            self._active = True
        logger.info(
            "supervisor started id=%s pool=%s/%s",
            self.id,
            self._pool.min_size,
            self._pool.max_size,
        )

    def block(self) -> None:
        """Block the calling thread until the supervisor stops.

        Returns at once when it is not running; while a stop is in
        progress (say, in a helper thread), waits for it to end.  Ctrl-C (a
        ``KeyboardInterrupt``) while blocked stops the supervisor gracefully
        and returns.
        """
        stopped = self._stopped
        if stopped.is_set():  # not running, and no stop in progress
            return
        try:
            stopped.wait()
        except KeyboardInterrupt:
            logger.info("supervisor interrupted, stopping id=%s", self.id)
            self.stop()

    def stop(
        self,
        wait: WaitArg = True,
        stop_schedulers: bool = True,
        cancel_tasks: bool = False,
    ) -> None:
        """Stop schedulers, aloops, the supervisor's loop and the pool.

        Args:
            wait: ``True`` waits for coroutines without limit; seconds bound
                that wait, then what is left is cancelled; ``False`` cancels
                at once.  Stopping schedulers and tasks running in pool
                threads are always waited for.
            stop_schedulers: Call every registered scheduler's
                ``stop(wait=...)`` first, newest first.  With ``False``
                only the schedulers that declare ``stopped_with_supervisor``
                (the supervised lease managers and grinders, which own
                pools that must not outlive the supervisor) are stopped;
                the loops of the other async schedulers are cancelled, and
                the sync ones (such as :class:`BackgroundWorker`, which
                holds a pool thread) are told to ``stop(wait=False)``, so
                they end after their current run.
            cancel_tasks: Cancel all coroutines (and queued pool work) at once.

        Safe from any thread and from a signal handler; stopping a stopped
        supervisor does nothing.  Called from one of the supervisor's own
        threads (its loop, an aloop, a pool thread), it cannot wait for
        itself: the stop then runs in a helper thread and this call returns
        at once; :meth:`block` returns when it is done.  The same holds for
        a call running on a thread that a scheduler stopped with the
        supervisor owns (a grinder item or ``lease.run`` on the thread
        backend of a supervised lease manager).

        Raises:
            ValueError: If ``wait`` is a negative or non-finite number.
        """
        deadline = deadline_from_wait(wait)
        if self._on_owned_thread():
            if self._stopping:
                return
            threading.Thread(
                target=self._stop_now,
                args=(wait, deadline, stop_schedulers, cancel_tasks),
                name=f"supervisor_{self.id}_stopper",
            ).start()
            return
        self._stop_now(wait, deadline, stop_schedulers, cancel_tasks)

    def _on_owned_thread(self) -> bool:
        if self._in_own_loop_thread():
            return True
        current = threading.current_thread()
        if self._pool.owns_thread(current):
            return True
        # A call running in a lease manager's pool (a grinder item, a
        # lease.run) on the thread backend: the drain would wait for it.
        return any(runs_on(s, current) for s in self._schedulers.schedulers().values())

    def _stop_now(
        self,
        wait: WaitArg,
        deadline: float | None,
        stop_schedulers: bool,
        cancel_tasks: bool,
    ) -> None:
        with self._state_lock:
            if self._stopping:  # re-entered, e.g. from a signal handler
                return
            if not self._active and self._pool.closed and not self.aloops:
                return
            self._set_stopping(True)
            self._active = False
            try:
                # Our own facades (lease managers, grinders) are stopped in
                # any case: their pools and tasks must not outlive the stop.
                self._schedulers.stop_all(
                    wait, deadline, cancel_tasks, owned_only=not stop_schedulers
                )
                logger.debug("supervisor schedulers stopped id=%s", self.id)
                # Loops of schedulers left unstopped would never end: cancel
                # the async ones, ask the sync ones (in pool threads, which
                # the pool's shutdown joins) to stop without waiting.
                self._schedulers.clear(
                    cancel_loops=cancel_tasks or not stop_schedulers,
                    stop_sync=not stop_schedulers,
                )
                self._forget_async_job_schedulers()
                self._close_observer()  # its server runs on our loop
                self._stop_loops(deadline, cancel_tasks)
                self._pool.shutdown(cancel_futures=cancel_tasks)
            finally:
                self._set_stopping(False)
                self._stopped.set()
        logger.info("supervisor stopped id=%s", self.id)

    def _set_stopping(self, stopping: bool) -> None:
        with self._lock:
            self._stopping = stopping

    # ---------------------------------------------------------- observation

    def get_info(
        self, aloops: bool = True, schedulers: bool = True, async_job_schedulers: bool = True
    ) -> SupervisorInfo:
        """Id, state, aloops, schedulers and pool sizes, as neotasker reports.

        Args:
            aloops: Include the aloops by name (else an empty dict).
            schedulers: Include the registered schedulers by name.
            async_job_schedulers: Include the async job schedulers by name.
        """
        with self._lock:
            return SupervisorInfo(
                id=self.id,
                active=self._active,
                aloops=dict(self.aloops) if aloops else {},
                schedulers=self.get_schedulers() if schedulers else {},
                async_job_schedulers=(
                    dict(self.async_job_schedulers) if async_job_schedulers else {}
                ),
                pool_min_size=self._pool.min_size,
                pool_max_size=self._pool.max_size,
            )

    def metrics_text(self) -> str:
        """The metrics of the supervisor and everything registered with it,
        in Prometheus' text format 0.0.4 (``doc/observability.md`` has the
        table). Works whether the supervisor runs or not.

        Raises:
            WrongLoopError: If called on an event loop's thread (a reading
                waits for each grinder's loop); serve ``/metrics`` with
                :meth:`serve_status` instead.
        """
        return self._observer_of().metrics_text()

    def serve_status(
        self, port: int = 0, host: str = "127.0.0.1", *, token: str | None = None
    ) -> str:
        """Serve the status page, ``/status.json``, ``/metrics`` and
        ``/healthz`` from the supervisor's loop until it stops; the page's
        URL. Asked again with the same address and token (or ``port=0``),
        it returns the same URL.

        Args:
            port: TCP port; ``0`` picks a free one.
            host: Address to bind. Off the loopback, ``token`` is required,
                and requests must carry it (``Authorization: Bearer ...``
                or ``?token=...``).
            token: A shared secret (at least 16 characters).

        Raises:
            LeasePoolNotStartedError: If the supervisor is not running.
            ValueError: If ``host`` is not loopback and no ``token`` is
                given, an argument is invalid, or it already serves on
                another address or with another token.
            OSError: If the address cannot be bound.
        """
        self.require_active("serve_status()")
        return self._observer_of().serve_status(port, host, token)

    def _observer_of(self) -> Observer:
        with self._lock:
            if self._observer is None:
                self._observer = make_observer(self)
            return self._observer

    def _close_observer(self) -> None:
        with self._lock:
            observer = self._observer
        if observer is not None:
            observer.close()

    def stats(self) -> Stats:
        """A JSON-serialisable snapshot of the supervisor and its parts."""
        with self._lock:
            aloops = [aloop.stats() for aloop in self.aloops.values()]
            schedulers = self._schedulers.stats()
            job_schedulers = list(self.async_job_schedulers.values())
            default = self.default_aloop.name if self.default_aloop else None
        return {
            "id": self.id,
            "active": self._active,
            "stopping": self._stopping,
            "poll_delay": self.poll_delay,
            "default_aloop": default,
            "aloops": aloops,
            "schedulers": schedulers,
            "async_job_schedulers": [scheduler.stats() for scheduler in job_schedulers],
            "pool": self._pool.stats(),
        }

