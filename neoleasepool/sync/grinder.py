"""The blocking facade of a work grinder.

:class:`SupervisedWorkGrinder` lets plain threads submit to a
:class:`~neoleasepool.grinder.facade.WorkGrinder` that lives on its lease
manager's aloop.  Items go over through the grinder's
``submit_from_thread``, whose hops to the loop are shared by concurrent
callers.  The facade attaches itself to its manager's facade, which stops
(drains) it before the manager.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from .._util.deadlines import deadline_from_wait, seconds_left
from .._util.validation import check_optional_timeout
from ..exceptions import LeasePoolNotStartedError, WrongLoopError
from ..grinder.facade import WorkGrinder
from ..types import Stats, WaitArg
from .base import FacadeBase, wait_result
from .manager import SupervisedLeaseManager

__all__ = ["SupervisedWorkGrinder"]

T = TypeVar("T")

logger = logging.getLogger("neoleasepool.supervised")


class SupervisedWorkGrinder(FacadeBase):
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
        manager.attach_grinder(self)

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
        return wait_result(future, seconds)

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
                "SupervisedWorkGrinder.enqueue() cannot be called from the owning "
                "event-loop thread; use the async API instead. (there await "
                ".grinder.enqueue())"
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
                self._stop_on_loop(cancel, timeout)
            except LeasePoolNotStartedError:
                logger.warning("grinder %s: its aloop stopped before the grinder", self.name)
        self.manager.detach_grinder(self)
        self._finish_stop()

    def _stop_on_loop(self, cancel: bool, timeout: float | None) -> None:
        stopping = self.aloop.submit(self.grinder.stop, cancel_pending=cancel)
        try:
            # A cancelling stop ends at once: wait for it without a bound.
            stopping.result(None if cancel else timeout)
        except concurrent.futures.TimeoutError:
            logger.warning("grinder %s: drain timed out; cancelling the rest", self.name)
            self.aloop.call(self.grinder.stop, cancel_pending=True)
            stopping.result()
