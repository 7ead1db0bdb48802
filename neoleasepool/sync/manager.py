"""The blocking facade of a lease manager.

:class:`SupervisedLeaseManager` lets synchronous code lease pools from a
:class:`~neoleasepool.leasing.manager.LeasedExecutorManager` that lives on
an aloop.  A blocking call makes at most one hop to that aloop; a lease's
``run()`` makes none.  Grinders that lease from the manager attach
themselves to it, so that its stop drains them first.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

from .._util.deadlines import deadline_after, deadline_from_wait, remaining, seconds_left
from .._util.validation import check_optional_timeout
from ..backends.base import ExecutorBackend
from ..exceptions import LeasePoolNotStartedError
from ..leasing.lease import ExecutorLease
from ..leasing.manager import LeasedExecutorManager
from ..loops.aloop import ALoop
from ..types import Stats, WaitArg
from .base import FacadeBase
from .lease import SupervisedLease

__all__ = ["SupervisedLeaseManager"]

T = TypeVar("T")

logger = logging.getLogger("neoleasepool.supervised")


class SupervisedLeaseManager(FacadeBase):
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
        self._grinders: list[FacadeBase] = []

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
        """How many pools the manager aims for now."""
        return self.manager.desired_executor_count()

    @property
    def available_count(self) -> int:
        """Pools free to lease."""
        return self.manager.available_count

    @property
    def leased_count(self) -> int:
        """Pools leased out."""
        return self.manager.leased_count

    @property
    def total_count(self) -> int:
        """All pools the manager holds."""
        return self.manager.total_count

    @property
    def backend(self) -> ExecutorBackend | str:
        """The manager's backend (see ``LeasedExecutorManager.backend``)."""
        return self.manager.backend

    def stats(self) -> Stats:
        """The manager's snapshot plus the scheduler name and aloop."""
        return {"name": self.name, "aloop": self.aloop.name, **self.manager.stats()}

    # --------------------------------------------------------- scheduler

    def attach_grinder(self, grinder: FacadeBase) -> None:
        """Stop ``grinder`` (a grinder facade leasing from here) before this manager."""
        self._grinders.append(grinder)

    def detach_grinder(self, grinder: FacadeBase) -> None:
        """Forget ``grinder`` once it has stopped; nothing happens if it is unknown."""
        with contextlib.suppress(ValueError):
            self._grinders.remove(grinder)

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

        Grinders attached to this manager are stopped first (with the same
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
        # A bounded wait always drains with that bound: it is the only stop
        # of the manager whose joins honour a timeout.
        bounded = not isinstance(wait, bool)
        drain = bounded or (not cancel_tasks and wait is not False)
        if self.aloop.active:
            try:
                self.aloop.call(self.manager.stop, drain=drain, timeout=seconds_left(deadline))
            except LeasePoolNotStartedError:
                logger.warning("lease manager %s: its aloop stopped before the manager", self.name)
        self._finish_stop()


async def _run_leased(
    manager: LeasedExecutorManager,
    fn: Callable[..., T],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> T:
    async with await manager.acquire() as held:
        return await held.run(fn, *args, **kwargs)
