"""The task supervisor: one owner for loops, threads and schedulers.

A :class:`TaskSupervisor` owns

* an event loop of its own, running in the thread ``supervisor_<id>_loop``
  (reserved aloop name ``"__supervisor__"``), where schedulers run unless
  they name another loop;
* named aloops (:class:`~neoleasepool.aloop.ALoop`), for async work that
  must not block the supervisor's loop or each other;
* a task pool (``supervisor_<id>_pool`` threads, or any executor you give
  it) behind :meth:`TaskSupervisor.spawn`;
* a registry of schedulers: anything with an async ``loop()`` and a regular
  ``stop(wait=True)``, such as background workers, lease managers and
  grinders.

:meth:`TaskSupervisor.stop` takes all of it down in one call, in an order
that lets each part drain into the next: schedulers (newest first), then
aloops, then the supervisor's loop, then the pool, which is joined.  The
API follows neotasker's supervisor, so code written for it keeps working.

:meth:`TaskSupervisor.create_lease_manager` and
:meth:`TaskSupervisor.create_work_grinder` build the blocking facades of
:mod:`neoleasepool.sync`; that package depends on aloops and the async core
only, and sees the supervisor through a protocol.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from .._util.deadlines import deadline_from_wait
from ..exceptions import LeasePoolNotStartedError
from ..loops.aloop import ALoop
from ..sync.factories import create_lease_manager, create_work_grinder
from ..sync.grinder import SupervisedWorkGrinder
from ..sync.manager import SupervisedLeaseManager
from ..types import Stats, WaitArg
from .pool import SupervisorPool
from .schedulers import SchedulerRegistry

__all__ = ["SupervisorInfo", "TaskSupervisor", "spawn", "task_supervisor"]

logger = logging.getLogger("neoleasepool.supervisor")

P = ParamSpec("P")
T = TypeVar("T")

#: The name of the supervisor's own loop; no aloop may take it.
RESERVED_ALOOP_NAME = "__supervisor__"


@dataclass(frozen=True)
class SupervisorInfo:
    """What :meth:`TaskSupervisor.get_info` reports (neotasker's fields)."""

    id: str
    active: bool
    aloops: dict[str, ALoop] = field(default_factory=dict)
    schedulers: dict[str, Any] = field(default_factory=dict)
    pool_min_size: int = 0
    pool_max_size: int = 0


class TaskSupervisor:
    """Owns a loop thread, aloops, a task pool and registered schedulers.

    Creating a supervisor starts no thread; :meth:`start` does.  Subclass it
    freely: every part is reached through ordinary methods.

    Args:
        id: Identifier used in thread names and log lines; a random UUID
            when ``None``.
        supervisor_id: neotasker's name for ``id``.
    """

    def __init__(self, id: str | None = None, *, supervisor_id: str | None = None) -> None:
        self.id = id or supervisor_id or str(uuid.uuid4())
        #: Kept for neotasker compatibility; nothing here waits by polling.
        self.poll_delay = 0.01
        self.aloops: dict[str, ALoop] = {}
        self.default_aloop: ALoop | None = None
        self._lock = threading.RLock()  # registry: aloops and schedulers
        self._state_lock = threading.RLock()  # start/stop transitions
        self._schedulers = SchedulerRegistry(self.id)
        self._active = False
        self._stopping = False
        self._stopped = threading.Event()
        self._stopped.set()
        self._loop: ALoop | None = None
        self._pool = SupervisorPool(f"supervisor_{self.id}_pool")

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

    @property
    def active(self) -> bool:
        """Whether the supervisor runs."""
        return self._active

    @property
    def aloop(self) -> ALoop | None:
        """The supervisor's own loop (``"__supervisor__"``) while it runs."""
        return self._loop

    def require_active(self, what: str) -> None:
        """Raise unless the supervisor runs; ``what`` names the caller's API.

        Raises:
            LeasePoolNotStartedError: A ``RuntimeError`` saying to call
                :meth:`start` first.
        """
        if not self._active:
            raise LeasePoolNotStartedError(
                f"TaskSupervisor {self.id!r} is not running: call its start() before using {what}"
            )

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
            loop = ALoop(
                RESERVED_ALOOP_NAME,
                self,
                daemon=True,
                thread_name=f"supervisor_{self.id}_loop",
            )
            loop.start()
            self._loop = loop
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
                only the supervised lease managers and grinders are stopped
                (they own pools that must not outlive the supervisor); the
                loops of the other async schedulers are cancelled, and the
                sync ones (such as :class:`BackgroundWorker`, which holds a
                pool thread) are told to ``stop(wait=False)``, so they end
                after their current run.
            cancel_tasks: Cancel all coroutines (and queued pool work) at once.

        Safe from any thread and from a signal handler; stopping a stopped
        supervisor does nothing.  Called from one of the supervisor's own
        threads (its loop, an aloop, a pool thread), it cannot wait for
        itself: the stop then runs in a helper thread and this call returns
        at once; :meth:`block` returns when it is done.  The same holds for
        a call running in a supervised lease manager's thread pool (a
        grinder item or ``lease.run`` on the thread backend).

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
        with self._lock:
            loops = [self._loop, *self.aloops.values()]
        if any(loop is not None and loop.in_loop_thread() for loop in loops):
            return True
        current = threading.current_thread()
        if self._pool.owns_thread(current):
            return True
        # A call running in a lease manager's pool (a grinder item, a
        # lease.run) on the thread backend: the drain would wait for it.
        for scheduler in self._schedulers.schedulers().values():
            owns = getattr(scheduler, "owns_thread", None)
            owned = getattr(scheduler, "stopped_with_supervisor", False) is True
            if owned and owns is not None and owns(current):
                return True
        return False

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
            self._stopping = True
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
                self._stop_loops(deadline, cancel_tasks)
                self._pool.shutdown(cancel_futures=cancel_tasks)
            finally:
                self._stopping = False
                self._stopped.set()
        logger.info("supervisor stopped id=%s", self.id)

    def _stop_loops(self, deadline: float | None, cancel_tasks: bool) -> None:
        with self._lock:
            aloops = list(reversed(self.aloops.values()))
            self.aloops.clear()
            self.default_aloop = None
            own, self._loop = self._loop, None
        for aloop in aloops:
            aloop.request_stop(deadline, cancel_tasks)
        for aloop in aloops:
            aloop.join()
        logger.debug("supervisor aloops stopped id=%s count=%s", self.id, len(aloops))
        if own is not None:
            own.request_stop(deadline, cancel_tasks)
            own.join()

    # --------------------------------------------------------------- aloops

    def create_aloop(
        self,
        name: str,
        daemon: bool = False,
        start: bool = True,
        default: bool = False,
    ) -> ALoop:
        """Create a named aloop; the supervisor stops it at shutdown.

        Args:
            name: Unique name; its thread is ``supervisor_aloop_<name>``.
            daemon: Run it in a daemon thread.
            start: Start it now (otherwise :meth:`start_aloop` later).
            default: Make it the default aloop of workers.

        Raises:
            ValueError: If ``name`` is reserved, empty or already used.
            RuntimeError: If the supervisor is stopping.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"aloop name must be a non-empty string, got {name!r}")
        if name == RESERVED_ALOOP_NAME:
            raise ValueError(
                f"the aloop name {RESERVED_ALOOP_NAME!r} is reserved for the "
                f"supervisor's own loop; choose another name"
            )
        aloop = ALoop(name, self, daemon=daemon)
        with self._lock:
            if self._stopping:
                raise RuntimeError(
                    f"TaskSupervisor {self.id!r} is stopping; create aloops after start()"
                )
            if name in self.aloops:
                raise ValueError(f"an aloop named {name!r} already exists; use get_aloop({name!r})")
            self.aloops[name] = aloop
            if default:
                self.default_aloop = aloop
        if start:
            aloop.start()
        return aloop

    def _named_aloop(self, name: str) -> ALoop:
        aloop = self.get_aloop(name)
        if aloop is None:
            raise ValueError(
                f"supervisor {self.id!r} has no aloop named {name!r}; create it "
                f"with create_aloop({name!r})"
            )
        return aloop

    def start_aloop(self, name: str) -> None:
        """Start (or restart) the aloop called ``name``.

        Raises:
            ValueError: If there is no such aloop.
        """
        self._named_aloop(name).start()

    def stop_aloop(self, name: str, wait: WaitArg = True, cancel_tasks: bool = False) -> None:
        """Stop the aloop called ``name``; it stays registered for restarts.

        Raises:
            ValueError: If there is no such aloop.
        """
        self._named_aloop(name).stop(wait=wait, cancel_tasks=cancel_tasks)

    def get_aloop(self, name: str | None = None, default: bool = True) -> ALoop | None:
        """Return the aloop ``name``, or the default aloop when ``name`` is None.

        ``"__supervisor__"`` returns the supervisor's own loop.
        """
        with self._lock:
            if name is None:
                return self.default_aloop if default else None
            if name == RESERVED_ALOOP_NAME:
                return self._loop
            return self.aloops.get(name)

    def get_aloops(self) -> dict[str, ALoop]:
        """A copy of the aloops by name."""
        with self._lock:
            return dict(self.aloops)

    def set_default_aloop(self, aloop: ALoop | str | None) -> None:
        """Make ``aloop`` (or the aloop of that name) the workers' default."""
        resolved = self._named_aloop(aloop) if isinstance(aloop, str) else aloop
        with self._lock:
            self.default_aloop = resolved

    def resolve_aloop(self, spec: ALoop | str | asyncio.AbstractEventLoop | None) -> ALoop:
        """Find the aloop that ``spec`` names, as workers and schedulers do.

        Args:
            spec: An :class:`ALoop`, an aloop name, an asyncio loop run by one
                of this supervisor's aloops, or ``None`` for the default
                aloop, else the supervisor's own loop.

        Raises:
            LeasePoolNotStartedError: If ``None`` falls back to the
                supervisor's loop and the supervisor is not running.
            ValueError: If no aloop of this supervisor matches.
        """
        if isinstance(spec, ALoop):
            return spec
        if isinstance(spec, str):
            return self._named_aloop(spec)
        with self._lock:
            candidates = [self._loop, *self.aloops.values()]
            default = self.default_aloop
        if spec is None:
            if default is not None and default.active:
                return default
            self.require_active("its own loop")
            assert self._loop is not None
            return self._loop
        for aloop in candidates:
            if aloop is not None and aloop.loop is spec:
                return aloop
        raise ValueError(
            f"the event loop {spec!r} is not run by an aloop of supervisor "
            f"{self.id!r}; pass an ALoop or an aloop name"
        )

    # ----------------------------------------------------------- schedulers

    def register_scheduler(self, scheduler: Any) -> concurrent.futures.Future[Any]:
        """Register an async scheduler and run its ``loop()`` coroutine.

        The coroutine runs on the scheduler's own loop when it names one
        (an ``aloop`` attribute holding an :class:`ALoop`, or neotasker's
        ``worker_loop`` holding an ALoop or an asyncio loop), else on the
        supervisor's loop.  At stop the supervisor calls
        ``scheduler.stop(wait=...)`` with ``wait`` only.

        Args:
            scheduler: An object with an async ``loop()`` and a regular
                ``stop(wait=True)``; named by ``name``/``_name``.

        Returns:
            The future of the ``loop()`` coroutine.

        Raises:
            LeasePoolNotStartedError: If the supervisor is not running.
            ValueError: If another scheduler has the same name.
        """
        self.require_active("register_scheduler()")
        target = getattr(scheduler, "aloop", None) or getattr(scheduler, "worker_loop", None)
        foreign: asyncio.AbstractEventLoop | None = None
        aloop: ALoop | None = None
        if isinstance(target, asyncio.AbstractEventLoop):
            try:
                aloop = self.resolve_aloop(target)
            except ValueError:
                foreign = target
        else:
            aloop = self.resolve_aloop(target)
        entry = self._schedulers.add(scheduler, is_async=True)
        try:
            if foreign is not None:
                future = asyncio.run_coroutine_threadsafe(scheduler.loop(), foreign)
            else:
                assert aloop is not None
                future = aloop.submit(scheduler.loop)
        except BaseException:
            self._schedulers.remove(scheduler)
            raise
        self._schedulers.watch(entry, future)
        return future

    #: neotasker's name for :meth:`register_scheduler`.
    register_async_scheduler = register_scheduler

    def register_sync_scheduler(self, scheduler: Any) -> None:
        """Register a scheduler that runs by itself; it is only stopped.

        Raises:
            LeasePoolNotStartedError: If the supervisor is not running.
            ValueError: If another scheduler has the same name.
        """
        self.require_active("register_sync_scheduler()")
        self._schedulers.add(scheduler, is_async=False)

    def unregister_scheduler(self, scheduler: Any) -> None:
        """Forget ``scheduler``; does nothing if it is not registered."""
        self._schedulers.remove(scheduler)

    #: Sync schedulers live in the same registry.
    unregister_sync_scheduler = unregister_scheduler

    def get_schedulers(self) -> dict[str, Any]:
        """The registered schedulers by name, in registration order."""
        return self._schedulers.schedulers()

    def get_scheduler(self, name: str) -> Any:
        """The registered scheduler called ``name``.

        Raises:
            KeyError: If no scheduler has that name.
        """
        schedulers = self._schedulers.schedulers()
        if name not in schedulers:
            raise KeyError(
                f"supervisor {self.id!r} has no scheduler named {name!r}; "
                f"registered: {', '.join(schedulers) or 'none'}"
            )
        return schedulers[name]

    # ---------------------------------------------- supervised leasing

    def create_lease_manager(
        self, name: str, *, aloop: ALoop | str | None = None, **manager_kwargs: Any
    ) -> SupervisedLeaseManager:
        """Start a :class:`~neoleasepool.manager.LeasedExecutorManager` on an
        aloop and register its blocking facade as a scheduler.

        Args:
            name: The scheduler name (also the default ``name_prefix``).
            aloop: The aloop (or its name) to run on; by default the default
                aloop, else a dedicated aloop ``leasepool_<name>`` that the
                facade owns and stops.
            **manager_kwargs: ``LeasedExecutorManager`` arguments
                (``max_pools`` is required).

        Returns:
            The facade: ``acquire``/``lease``/``run``/``stats``... from sync
            code, ``.manager`` for async code on its loop.

        Raises:
            LeasePoolNotStartedError: If the supervisor is not running.
            ValueError: If the name is taken or an argument is invalid.
        """
        return create_lease_manager(self, name, aloop=aloop, **manager_kwargs)

    def create_work_grinder(
        self,
        name: str,
        manager: SupervisedLeaseManager | str,
        *,
        aloop: ALoop | str | None = None,
        **grinder_kwargs: Any,
    ) -> SupervisedWorkGrinder:
        """Start a :class:`~neoleasepool.grinder.WorkGrinder` on ``manager``'s
        aloop and register its blocking facade as a scheduler.

        Registered after its manager, the grinder is stopped (drained) before
        it by :meth:`stop`.

        Args:
            name: The scheduler name (also the default ``owner_prefix``).
            manager: A facade from :meth:`create_lease_manager`, or its name.
            aloop: Must be ``None`` or the manager's aloop.
            **grinder_kwargs: ``WorkGrinder`` arguments.

        Raises:
            LeasePoolNotStartedError: If the supervisor is not running.
            ValueError: If the name is taken or an argument is invalid.
        """
        return create_work_grinder(self, name, manager, aloop=aloop, **grinder_kwargs)

    # ---------------------------------------------------------- observation

    def get_info(self) -> SupervisorInfo:
        """Id, state, aloops, schedulers and pool sizes, as neotasker reports."""
        with self._lock:
            return SupervisorInfo(
                id=self.id,
                active=self._active,
                aloops=dict(self.aloops),
                schedulers=self.get_schedulers(),
                pool_min_size=self._pool.min_size,
                pool_max_size=self._pool.max_size,
            )

    def stats(self) -> Stats:
        """A JSON-serialisable snapshot of the supervisor and its parts."""
        with self._lock:
            aloops = [a.stats() for a in self.aloops.values()]
            schedulers = self._schedulers.stats()
            default = self.default_aloop.name if self.default_aloop else None
        return {
            "id": self.id,
            "active": self._active,
            "stopping": self._stopping,
            "poll_delay": self.poll_delay,
            "default_aloop": default,
            "aloops": aloops,
            "schedulers": schedulers,
            "pool": self._pool.stats(),
        }


#: The default supervisor, created (not started) on import.
task_supervisor = TaskSupervisor(id="default")

#: ``task_supervisor.spawn``: run a callable in the default supervisor's pool.
spawn = task_supervisor.spawn
