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
import contextlib
import logging
import time
from collections.abc import AsyncIterable, Callable, Iterable, Iterator
from typing import Any, TypeVar

from .._util.deadlines import deadline_from_wait, seconds_left
from .._util.tally import HistogramSnapshot
from .._util.validation import check_optional_timeout
from ..exceptions import LeasePoolNotStartedError, WrongLoopError
from ..grinder.facade import WorkGrinder
from ..grinder.map_inputs import check_map_args, map_length
from ..grinder.mapping import MapRun, deliver
from ..grinder.progress import ProgressBar, progress_bar
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

    def map(
        self,
        fn: Callable[..., Any],
        /,
        *iterables: Iterable[Any] | AsyncIterable[Any],
        chunk_size: int | None = None,
        ordered: bool = True,
        return_exceptions: bool = False,
        window: int | None = None,
        progress: bool = False,
        timeout: float | None = None,
    ) -> Iterator[Any]:
        """:meth:`WorkGrinder.map` as a plain iterator, for synchronous code.

        Results arrive a chunk per hop to the grinder's loop. Closing the
        iterator (``break`` out of the ``for``, or ``close()``) cancels what
        is still queued or running. The inputs are pulled on the grinder's
        loop thread, as they are needed.

        Args:
            timeout: As ``Executor.map``: ``TimeoutError`` when a result is
                not there ``timeout`` seconds after this call (the rest is
                then cancelled).

        Raises:
            WrongLoopError: If called on the grinder's aloop thread.
            See :meth:`WorkGrinder.map` for the rest.
        """
        self._blocking("map")
        check_map_args(fn, iterables, chunk_size, window)
        seconds = check_optional_timeout("timeout", timeout)
        deadline = None if seconds is None else time.monotonic() + seconds
        if self._closed:
            raise LeasePoolNotStartedError(f"SupervisedWorkGrinder {self.name!r} is stopped")

        def open_run() -> MapRun:  # at the first next(): nothing runs unread
            return self.aloop.call(
                _open_map, self.grinder, fn, iterables, chunk_size, ordered, window
            )

        bar = progress_bar(progress, map_length(iterables) if progress else None)
        return self._results(open_run, bool(return_exceptions), bar, deadline)

    def _results(
        self, open_run: Callable[[], MapRun], return_exceptions: bool,
        bar: ProgressBar | None, deadline: float | None,
    ) -> Iterator[Any]:
        run = open_run()
        try:
            while True:
                # The deadline is kept on the loop: a chunk already there is
                # returned whatever the time, as Executor.map returns results
                # already done.
                outcomes = self.aloop.run_coroutine_threadsafe(run.next_chunk(deadline))
                if outcomes is None:
                    return
                yield from deliver(outcomes, return_exceptions, bar)
        finally:
            if self.aloop.active and not self.aloop.in_loop_thread():
                with contextlib.suppress(LeasePoolNotStartedError):
                    self.aloop.run_coroutine_threadsafe(run.close())
            if bar is not None:
                bar.finish()

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
            try:
                snapshot = self.grinder.stats_from_thread(timeout)
            except LeasePoolNotStartedError:
                # Checked, then stopped by another thread before the hop:
                # a stopped grinder answers on any thread.
                snapshot = self.grinder.stats()
        return {"name": self.name, "manager": self.manager.name, **snapshot}

    def stats_later(self) -> concurrent.futures.Future[Stats]:
        """The grinder's own snapshot (:meth:`WorkGrinder.stats_later`,
        without the scheduler name) as a future: ask several grinders at
        once, then wait for all with one deadline and cancel what is left."""
        if not self.aloop.in_loop_thread() and not self._closed and self.aloop.active:
            try:
                return self.grinder.stats_later()
            except LeasePoolNotStartedError:
                pass  # stopped meanwhile: a stopped grinder answers on any thread
        done: concurrent.futures.Future[Stats] = concurrent.futures.Future()
        done.set_result(self.grinder.stats())
        return done

    def item_counts(self) -> Stats:
        """The grinder's counts from any thread, without a hop
        (:meth:`WorkGrinder.item_counts`), with its name and manager."""
        return {"name": self.name, "manager": self.manager.name, **self.grinder.item_counts()}

    def item_timings(self) -> dict[str, HistogramSnapshot]:
        """The grinder's item timings (:meth:`WorkGrinder.item_timings`), from any thread."""
        return self.grinder.item_timings()

    def recent_failures(self) -> list[dict[str, Any]]:
        """The grinder's last failed items (:meth:`WorkGrinder.recent_failures`)."""
        return self.grinder.recent_failures()

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


async def _open_map(
    grinder: WorkGrinder,
    fn: Callable[..., Any],
    iterables: tuple[Any, ...],
    chunk_size: int | None,
    ordered: bool,
    window: int | None,
) -> MapRun:
    return grinder.open_map(fn, *iterables, chunk_size=chunk_size, ordered=ordered, window=window)
