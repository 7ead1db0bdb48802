"""Blocking facades of the lease manager and the grinder, run as schedulers.

A synchronous script cannot ``await``.  These facades let it use a
:class:`~neoleasepool.manager.LeasedExecutorManager` and a
:class:`~neoleasepool.grinder.WorkGrinder` that live on an aloop, through
plain blocking calls, and let the supervisor stop them in order: each facade
is a *scheduler* (an async ``loop()`` the supervisor runs, a regular
``stop(wait=...)`` it calls), registered by
:meth:`TaskSupervisor.create_lease_manager` and
:meth:`TaskSupervisor.create_work_grinder`.

Cost: a blocking call makes at most one hop to the aloop.  ``lease.run()``
makes none (the lease's executor takes work from any thread), and the
grinder's ``submit`` hands items over through ``submit_from_thread``, whose
hops are shared by concurrent callers.

Layering: this module sits between the aloops and the supervisor.  It uses
:class:`~neoleasepool.aloop.ALoop` (the one blocking bridge) and the async
core; ``supervisor.py`` imports it to offer the ``create_*`` methods, and it
never imports the supervisor.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Protocol, TypeVar

from .._util.deadlines import deadline_after, deadline_from_wait, remaining, seconds_left
from .._util.validation import check_optional_timeout
from ..exceptions import LeaseExpiredError, LeasePoolNotStartedError, WrongLoopError
from ..grinder.facade import WorkGrinder
from ..leasing.lease import ExecutorLease
from ..leasing.manager import LeasedExecutorManager
from ..loops.aloop import ALoop
from ..types import Stats, WaitArg

__all__ = [
    "SupervisedLease",
    "SupervisedLeaseManager",
    "SupervisedWorkGrinder",
    "create_lease_manager",
    "create_work_grinder",
]

T = TypeVar("T")

logger = logging.getLogger("neoleasepool.supervised")


def _wait_result(future: concurrent.futures.Future[T], timeout: float | None) -> T:
    """Block for ``future``; on timeout cancel it (the item never runs if it
    has not started) and raise ``TimeoutError``."""
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        what = "it was cancelled" if future.cancel() else "it had started and keeps running"
        raise TimeoutError(f"no result within timeout={timeout}s; {what}") from None


class _SchedulerBase:
    """What both facades share: a name, an aloop, and the scheduler protocol."""

    #: Tells the supervisor that ``stop()`` also takes ``cancel_tasks``.
    accepts_cancel_tasks = True
    #: Stopped by ``TaskSupervisor.stop()`` even with ``stop_schedulers=False``:
    #: the facade's pools, threads and tasks belong to the supervisor's stop.
    stopped_with_supervisor = True

    def __init__(self, name: str, aloop: ALoop, *, owns_aloop: bool) -> None:
        self.name = name
        self.aloop = aloop
        self._owns_aloop = owns_aloop
        self._stopped_event: asyncio.Event | None = None  # created on the aloop
        self._closed = False

    async def loop(self) -> None:
        """The scheduler coroutine: lives until :meth:`stop`."""
        event = self._stopped_event
        if event is None:
            event = self._stopped_event = asyncio.Event()
        if self._closed:
            return
        await event.wait()

    def _blocking(self, method: str) -> None:
        if self.aloop.in_loop_thread():
            raise WrongLoopError(
                f"{type(self).__name__}.{method}() blocks, so it must not run on its "
                f"aloop's thread ({self.aloop.name!r}); there use the async object "
                f"(.manager / .grinder) with await"
            )

    def _finish_stop(self) -> None:
        self._closed = True
        event = self._stopped_event
        if event is not None and self.aloop.active:
            with contextlib.suppress(LeasePoolNotStartedError):
                self.aloop.call_soon(event.set)
        if self._owns_aloop and self.aloop.active and not self.aloop.in_loop_thread():
            self.aloop.stop(wait=True)

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` has completed."""
        return self._closed


class SupervisedLease:
    """A lease for synchronous code; use it in a ``with`` block.

    ``run()`` and ``executor.submit()`` hand work straight to the leased
    pool from the calling thread; only ``release()`` hops to the aloop.
    """

    def __init__(self, lease: ExecutorLease, owner: SupervisedLeaseManager) -> None:
        self.lease = lease
        self._owner = owner

    def __repr__(self) -> str:
        return f"<SupervisedLease {self.lease!r}>"

    @property
    def executor(self) -> concurrent.futures.Executor:
        """The leased pool's executor proxy (thread-safe)."""
        return self.lease.executor

    @property
    def lease_id(self) -> str:
        return self.lease.lease_id

    @property
    def owner(self) -> str | None:
        return self.lease.owner

    @property
    def active(self) -> bool:
        return self.lease.active

    @property
    def soft_expires_at(self) -> float:
        return self.lease.soft_expires_at

    @property
    def hard_expires_at(self) -> float:
        return self.lease.hard_expires_at

    def run(
        self, fn: Callable[..., T], /, *args: Any, timeout: float | None = None, **kwargs: Any
    ) -> T:
        """Run ``fn(*args, **kwargs)`` on the leased pool and block for it.

        ``timeout`` is reserved for this call (wrap ``fn`` with
        ``functools.partial`` to pass a keyword named ``timeout``).

        Raises:
            LeaseExpiredError: If the lease was released or revoked.
            TimeoutError: If no result came within ``timeout`` (the call is
                cancelled if it has not started).
            WrongLoopError: If called on the manager's aloop thread.
        """
        self._owner._blocking("SupervisedLease.run")
        seconds = check_optional_timeout("timeout", timeout)
        try:
            return _wait_result(self.lease.executor.submit(fn, *args, **kwargs), seconds)
        except concurrent.futures.CancelledError:
            if self.lease.active:
                raise
            # Cancelled by the manager (revoked, or stopped without draining).
            raise LeaseExpiredError(
                f"lease {self.lease.lease_id} ended before the call ran"
            ) from None

    def release(self, timeout: float | None = None) -> None:
        """Give the pool back (idempotent); submitted work keeps running."""
        if not self.lease.active:
            return
        self._owner._blocking("SupervisedLease.release")
        self._owner.aloop.call_with_timeout(timeout, self.lease.release)

    def __enter__(self) -> SupervisedLease:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


class SupervisedLeaseManager(_SchedulerBase):
    """A lease manager on an aloop, usable from synchronous code.

    Built by :meth:`TaskSupervisor.create_lease_manager`.  Async code on the
    manager's own loop may use :attr:`manager` directly; async code on any
    other loop uses the ``a*`` twins, which hop to the right loop.

    Attributes:
        name: The scheduler name.
        aloop: The aloop the manager runs on.
        manager: The async :class:`LeasedExecutorManager`.
    """

    def __init__(
        self, name: str, manager: LeasedExecutorManager, aloop: ALoop, *, owns_aloop: bool
    ) -> None:
        super().__init__(name, aloop, owns_aloop=owns_aloop)
        self.manager = manager
        # The grinders leasing from this manager: stopped before it, since a
        # grinder drains through its manager and lives on the same aloop.
        self._grinders: list[SupervisedWorkGrinder] = []

    def __repr__(self) -> str:
        return f"<SupervisedLeaseManager {self.name!r} on {self.aloop.name!r} {self.manager!r}>"

    # --------------------------------------------------------- leasing

    def acquire(
        self,
        *,
        lease_seconds: float | None = None,
        owner: str | None = None,
        wait: bool = True,
        timeout: float | None = None,
    ) -> SupervisedLease:
        """Lease a pool, blocking while none is free (see
        :meth:`LeasedExecutorManager.acquire`).

        Raises:
            TimeoutError: If ``timeout`` passed first.
            LeaseUnavailableError: If ``wait=False`` and no pool is free.
            WrongLoopError: If called on the manager's aloop thread.
        """
        self._blocking("acquire")
        lease = self.aloop.call(
            self.manager.acquire, lease_seconds=lease_seconds, owner=owner, wait=wait,
            timeout=timeout,
        )
        return SupervisedLease(lease, self)

    def release(self, lease: SupervisedLease | ExecutorLease | str, timeout: float | None = None
                ) -> None:
        """Release a lease given as object or id (idempotent)."""
        self._blocking("release")
        lease_id = lease if isinstance(lease, str) else lease.lease_id
        self.aloop.call_with_timeout(timeout, self.manager.release, lease_id)

    @contextlib.contextmanager
    def lease(
        self,
        *,
        lease_seconds: float | None = None,
        owner: str | None = None,
        wait: bool = True,
        timeout: float | None = None,
    ) -> Iterator[SupervisedLease]:
        """``with pool.lease(owner="job") as lease:`` acquires, then releases."""
        held = self.acquire(lease_seconds=lease_seconds, owner=owner, wait=wait, timeout=timeout)
        try:
            yield held
        finally:
            held.release()

    def run(
        self, fn: Callable[..., T], /, *args: Any, timeout: float | None = None, **kwargs: Any
    ) -> T:
        """Lease a pool, run one call on it, release: the one-liner.

        ``timeout`` bounds the whole call, the wait for a pool included.
        """
        seconds = check_optional_timeout("timeout", timeout)
        deadline = deadline_after(seconds)
        with self.lease(timeout=seconds) as held:
            return held.run(fn, *args, timeout=seconds_left(deadline), **kwargs)

    # ----------------------------------------------------- async twins

    async def arun(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Await ``fn(*args, **kwargs)`` on a leased pool, from any loop."""
        if self.aloop.in_loop_thread():
            return await _run_leased(self.manager, fn, args, kwargs)
        return await asyncio.wrap_future(
            self.aloop.submit(_run_leased, self.manager, fn, args, kwargs)
        )

    @contextlib.asynccontextmanager
    async def alease(
        self, *, lease_seconds: float | None = None, owner: str | None = None,
        wait: bool = True, timeout: float | None = None,
    ) -> AsyncIterator[ExecutorLease]:
        """``async with pool.alease() as lease:`` from any loop.

        On the manager's own loop this is the manager's lease; on other
        loops use ``lease.executor.submit`` with ``asyncio.wrap_future``
        (``lease.run`` belongs to the manager's loop).
        """
        acquire = functools.partial(
            self.manager.acquire,
            lease_seconds=lease_seconds, owner=owner, wait=wait, timeout=timeout,
        )
        if self.aloop.in_loop_thread():
            async with await acquire() as held:
                yield held
            return
        held = await asyncio.wrap_future(self.aloop.submit(acquire))
        try:
            yield held
        finally:
            await asyncio.wrap_future(self.aloop.submit(held.release))

    # --------------------------------------------------------- sizing and info

    def owns_thread(self, thread: threading.Thread) -> bool:
        """Whether ``thread`` runs work for this manager (a thread-backend
        pool worker): the supervisor does not stop from such a thread in
        place, since the drain would wait for the very call that stops."""
        return self.manager.owns_thread(thread)

    def notify_scale_changed(self) -> None:
        """Wake the checker to re-read the size provider; any thread."""
        self.manager.notify_scale_changed()

    def desired_executor_count(self) -> int:
        return self.manager.desired_executor_count()

    @property
    def available_count(self) -> int:
        return self.manager.available_count

    @property
    def leased_count(self) -> int:
        return self.manager.leased_count

    @property
    def total_count(self) -> int:
        return self.manager.total_count

    @property
    def backend(self) -> str:
        return self.manager.backend

    def stats(self) -> Stats:
        """The manager's snapshot plus the scheduler name and aloop."""
        return {"name": self.name, "aloop": self.aloop.name, **self.manager.stats()}

    # --------------------------------------------------------- scheduler

    def stop(self, wait: WaitArg = True, cancel_tasks: bool = False) -> None:
        """Stop the manager: refuse new leases, drain, shut every pool down.

        Args:
            wait: ``True`` drains submitted work without limit; seconds bound
                the drain (then queued work is cancelled and process
                workers are killed); ``False`` does not drain.
            cancel_tasks: Do not drain: cancel queued work and wait only for
                calls already running.  With ``wait`` in seconds the stop
                still ends within that bound: work left on the leases gets
                what is left of it, then is cancelled (process workers are
                killed), since ``LeasedExecutorManager.stop(drain=False)``
                joins running calls without a limit.

        Grinders created on this manager are stopped first (with the same
        ``wait`` and ``cancel_tasks``): they drain through it, and an aloop
        the facade owns cannot stop while a grinder still runs there.

        Idempotent.  Not from the manager's own aloop thread.
        """
        if self._closed:
            return
        self._blocking("stop")
        deadline = deadline_from_wait(wait)
        for grinder in reversed(list(self._grinders)):
            grinder.stop(
                wait=wait if isinstance(wait, bool) else remaining(deadline),
                cancel_tasks=cancel_tasks,
            )
        timeout = seconds_left(deadline)
        # A bounded wait always drains with that bound: it is the only stop
        # of the manager whose joins honour a timeout.
        bounded = not isinstance(wait, bool)
        drain = bounded or (not cancel_tasks and wait is not False)
        if self.aloop.active:
            try:
                self.aloop.call(self.manager.stop, drain=drain, timeout=timeout)
            except LeasePoolNotStartedError:
                logger.warning("lease manager %s: its aloop stopped before the manager", self.name)
        self._finish_stop()


class SupervisedWorkGrinder(_SchedulerBase):
    """A work grinder on its manager's aloop, usable from synchronous code.

    Built by :meth:`TaskSupervisor.create_work_grinder`.

    Attributes:
        name: The scheduler name.
        aloop: The aloop it runs on (its manager's).
        grinder: The async :class:`WorkGrinder`.
        manager: The facade of the manager it leases from.
    """

    def __init__(
        self, name: str, grinder: WorkGrinder, manager: SupervisedLeaseManager
    ) -> None:
        super().__init__(name, manager.aloop, owns_aloop=False)
        self.grinder = grinder
        self.manager = manager
        manager._grinders.append(self)

    def __repr__(self) -> str:
        return f"<SupervisedWorkGrinder {self.name!r} on {self.aloop.name!r} {self.grinder!r}>"

    def submit(
        self,
        fn: Callable[..., T],
        /,
        *args: Any,
        owner: str | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> T:
        """Queue ``fn(*args, **kwargs)`` and block for its result.

        ``owner`` and ``timeout`` are reserved keywords; on timeout the item
        is cancelled (it never runs if it was still queued).

        Raises:
            TimeoutError: If no result came within ``timeout``.
            WrongLoopError: If called on the grinder's aloop thread.
        """
        self._blocking("submit")
        seconds = check_optional_timeout("timeout", timeout)
        future = self.grinder.submit_from_thread(fn, *args, owner=owner, **kwargs)
        return _wait_result(future, seconds)

    def enqueue(
        self, fn: Callable[..., T], /, *args: Any, owner: str | None = None, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        """Queue ``fn(*args, **kwargs)``; return a ``concurrent.futures.Future``.

        Raises:
            WrongLoopError: On the grinder's aloop thread (there use
                ``await .grinder.enqueue()``, which gives an asyncio future).
        """
        if self.aloop.in_loop_thread():
            raise WrongLoopError(
                "SupervisedWorkGrinder.enqueue() is for other threads; on its aloop "
                "use await .grinder.enqueue()"
            )
        return self.grinder.submit_from_thread(fn, *args, owner=owner, **kwargs)

    async def asubmit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Await ``fn(*args, **kwargs)`` through the grinder, from any loop."""
        if self.aloop.in_loop_thread():
            return await self.grinder.submit(fn, *args, **kwargs)
        return await asyncio.wrap_future(self.grinder.submit_from_thread(fn, *args, **kwargs))

    def stats(self, timeout: float | None = None) -> Stats:
        """The grinder's snapshot (one hop), plus the scheduler name."""
        if self.aloop.in_loop_thread() or self._closed or not self.aloop.active:
            snapshot = self.grinder.stats()
        else:
            snapshot = self.grinder.stats_from_thread(timeout)
        return {"name": self.name, "manager": self.manager.name, **snapshot}

    def stop(self, wait: WaitArg = True, cancel_tasks: bool = False) -> None:
        """Stop the grinder.

        Args:
            wait: ``True`` drains queued work without limit; seconds bound the
                drain, then what is left is cancelled; ``False`` cancels
                queued work at once.
            cancel_tasks: Cancel queued and in-flight work at once.

        Idempotent.  Not from the grinder's own aloop thread.
        """
        if self._closed:
            return
        self._blocking("stop")
        cancel = cancel_tasks or wait is False
        timeout = seconds_left(deadline_from_wait(wait))
        if self.aloop.active:
            try:
                stopping = self.aloop.submit(self.grinder.stop, cancel_pending=cancel)
                try:
                    # A cancelling stop ends at once: wait for it without a bound.
                    stopping.result(None if cancel else timeout)
                except concurrent.futures.TimeoutError:
                    logger.warning("grinder %s: drain timed out; cancelling the rest", self.name)
                    self.aloop.call(self.grinder.stop, cancel_pending=True)
                    stopping.result()
            except LeasePoolNotStartedError:
                logger.warning("grinder %s: its aloop stopped before the grinder", self.name)
        with contextlib.suppress(ValueError):
            self.manager._grinders.remove(self)
        self._finish_stop()


async def _run_leased(
    manager: LeasedExecutorManager,
    fn: Callable[..., T],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> T:
    async with await manager.acquire() as lease:
        return await lease.run(fn, *args, **kwargs)


class SupervisorLike(Protocol):
    """The parts of :class:`TaskSupervisor` the factories below use."""

    id: str

    def require_active(self, what: str) -> None: ...

    def get_schedulers(self) -> dict[str, Any]: ...

    def resolve_aloop(self, spec: ALoop | str | asyncio.AbstractEventLoop | None) -> ALoop: ...

    def get_aloop(self, name: str | None = None, default: bool = True) -> ALoop | None: ...

    def create_aloop(
        self, name: str, daemon: bool = False, start: bool = True, default: bool = False
    ) -> ALoop: ...

    def register_scheduler(self, scheduler: Any) -> concurrent.futures.Future[Any]: ...


def _check_free_name(supervisor: SupervisorLike, name: str) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    if name in supervisor.get_schedulers():
        raise ValueError(
            f"a scheduler named {name!r} is already registered with supervisor "
            f"{supervisor.id!r}; use get_scheduler({name!r}) or another name"
        )


def create_lease_manager(
    supervisor: SupervisorLike,
    name: str,
    *,
    aloop: ALoop | str | None = None,
    **manager_kwargs: Any,
) -> SupervisedLeaseManager:
    """Build, start and register a supervised lease manager.

    See :meth:`TaskSupervisor.create_lease_manager`.
    """
    supervisor.require_active("create_lease_manager()")
    _check_free_name(supervisor, name)
    manager_kwargs.setdefault("name_prefix", name)
    manager = LeasedExecutorManager(**manager_kwargs)  # validates before any thread starts
    owns = False
    if aloop is not None:
        target = supervisor.resolve_aloop(aloop)
    elif supervisor.get_aloop() is not None:
        target = supervisor.resolve_aloop(None)
    else:
        # The dedicated aloop stays registered (stopped) after its facade
        # stops, as stopped aloops do; a new manager of that name restarts it.
        own_name = f"leasepool_{name}"
        previous = supervisor.get_aloop(own_name)
        if previous is not None and not previous.active:
            previous.start()
            target = previous
        else:
            target = supervisor.create_aloop(own_name, daemon=True)
        owns = True
    facade = SupervisedLeaseManager(name, manager, target, owns_aloop=owns)
    try:
        target.call(manager.start)
        supervisor.register_scheduler(facade)
    except BaseException:
        facade.stop(wait=False)
        raise
    logger.debug("supervised lease manager created name=%s aloop=%s", name, target.name)
    return facade


def create_work_grinder(
    supervisor: SupervisorLike,
    name: str,
    manager: SupervisedLeaseManager | str,
    *,
    aloop: ALoop | str | None = None,
    **grinder_kwargs: Any,
) -> SupervisedWorkGrinder:
    """Build, start and register a supervised grinder on ``manager``'s aloop.

    See :meth:`TaskSupervisor.create_work_grinder`.
    """
    supervisor.require_active("create_work_grinder()")
    _check_free_name(supervisor, name)
    if isinstance(manager, str):
        found = supervisor.get_schedulers().get(manager)
        if not isinstance(found, SupervisedLeaseManager):
            raise ValueError(f"no supervised lease manager named {manager!r}")
        manager = found
    if not isinstance(manager, SupervisedLeaseManager):
        raise ValueError(
            "manager must be a supervised lease manager from create_lease_manager() "
            f"(or its name), got {manager!r}"
        )
    if aloop is not None and supervisor.resolve_aloop(aloop) is not manager.aloop:
        raise ValueError(
            f"a grinder runs on its manager's aloop ({manager.aloop.name!r}); "
            "leave aloop=None or pass that one"
        )
    grinder_kwargs.setdefault("owner_prefix", name)
    grinder = WorkGrinder(executor_manager=manager.manager, **grinder_kwargs)
    facade = SupervisedWorkGrinder(name, grinder, manager)
    try:
        manager.aloop.call(grinder.start)
        supervisor.register_scheduler(facade)
    except BaseException:
        facade.stop(wait=False)
        raise
    logger.debug("supervised grinder created name=%s manager=%s", name, manager.name)
    return facade
