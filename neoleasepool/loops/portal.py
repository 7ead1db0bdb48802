"""The blocking bridge from other threads into an aloop (private).

:class:`LoopPortal` is the one way sync code reaches an event loop running
in another thread, in the spirit of anyio's ``BlockingPortal``:

* :meth:`~LoopPortal.call` runs an async function on the loop and blocks
  for its result; :meth:`~LoopPortal.call_with_timeout` adds a deadline;
* :meth:`~LoopPortal.submit` starts it and returns a
  :class:`concurrent.futures.Future` (cancelling that future cancels the
  task);
* :meth:`~LoopPortal.call_soon` schedules a plain callback on the loop,
  :meth:`~LoopPortal.call_sync` runs one there and blocks for its result;
* neotasker's ``spawn_coroutine_threadsafe`` and
  ``run_coroutine_threadsafe`` are built on the same machinery.

The async function is called on the loop thread, so no coroutine is created
for refused work.  Unlike ``asyncio.run_coroutine_threadsafe``, nothing is
handed to a loop that has stopped accepting work: the check and the
hand-over happen under the owner's lock, and the owner's shutdown runs
every hand-over made before it.  Every blocking entry point refuses to run
on the loop's own thread, where it would wait for itself forever.

:class:`~neoleasepool.loops.aloop.ALoop` is the only subclass; it provides the
state declared at the top of :class:`LoopPortal`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from .._util.futures import resolve_from_thread
from .._util.validation import check_optional_timeout
from ..exceptions import LeasePoolNotStartedError, WrongLoopError

__all__ = ["LoopPortal"]

P = ParamSpec("P")
T = TypeVar("T")


class LoopPortal:
    """Thread-safe entry points into an event loop owned by a subclass.

    The subclass keeps these attributes current: ``_loop`` (the loop),
    ``_accepting`` (whether it takes work; changed under ``_lock``),
    ``_cancelling`` (set on the loop thread once leftover tasks are being
    cancelled), ``_submitted`` (a counter) and ``_thread_id``.
    """

    name: str
    _lock: threading.RLock
    _loop: asyncio.AbstractEventLoop | None
    _accepting: bool
    _cancelling: bool
    _submitted: int
    _thread_id: int | None

    def in_loop_thread(self) -> bool:
        """Whether the caller runs on the loop's thread."""
        return self._thread_id is not None and self._thread_id == threading.get_ident()

    def _refuse_own_thread(self, method: str) -> None:
        if self.in_loop_thread():
            raise WrongLoopError(
                f"ALoop.{method}() must not be called from the thread of aloop "
                f"{self.name!r}: it would wait for itself forever; there, await "
                f"the coroutine directly or use ALoop.submit()"
            )

    def _not_running(self) -> LeasePoolNotStartedError:
        return LeasePoolNotStartedError(
            f"aloop {self.name!r} is not running: start it (start() or "
            f"TaskSupervisor.create_aloop()) before giving it work"
        )

    def _schedule(
        self,
        factory: Callable[[], Awaitable[T]],
        discard: Callable[[], None] | None,
    ) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            if not self._accepting:
                if discard is not None:
                    discard()
                raise self._not_running()
            loop = self._loop
            assert loop is not None
            loop.call_soon_threadsafe(self._start_task, loop, factory, discard, future)
            self._submitted += 1
        return future

    def _start_task(
        self,
        loop: asyncio.AbstractEventLoop,
        factory: Callable[[], Awaitable[T]],
        discard: Callable[[], None] | None,
        future: concurrent.futures.Future[T],
    ) -> None:
        # Runs on the loop thread.  ``future`` stays PENDING while the task
        # runs, so a caller's cancel() succeeds and reaches the task.
        if future.cancelled() or self._cancelling:
            if discard is not None:
                discard()
            future.cancel()
            return
        try:
            task = asyncio.ensure_future(factory())
        except BaseException as exc:  # handed to the caller's future
            try:
                future.set_exception(exc)
            except concurrent.futures.InvalidStateError:
                pass
            if not isinstance(exc, Exception):
                raise
            return
        task.add_done_callback(functools.partial(_resolve_future, future))

        def _on_caller_done(done: concurrent.futures.Future[T]) -> None:
            if done.cancelled() and not task.done():
                try:
                    loop.call_soon_threadsafe(task.cancel)
                except RuntimeError:  # the loop is closed; the task is gone
                    pass

        future.add_done_callback(_on_caller_done)

    def submit(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> concurrent.futures.Future[T]:
        """Run ``fn(*args, **kwargs)`` on the loop as a task; return its future.

        ``fn`` is called on the loop thread, so a coroutine is never created
        for work that is refused.  Cancelling the returned future cancels the
        task.  Safe from any thread, the aloop's own included.

        Args:
            fn: An async function (or any callable returning an awaitable).
            *args: Positional arguments for ``fn``.
            **kwargs: Keyword arguments for ``fn``.

        Returns:
            A future resolved with the task's result, exception or
            cancellation.

        Raises:
            LeasePoolNotStartedError: If the aloop is not running (a
                ``RuntimeError``).
        """
        return self._schedule(functools.partial(fn, *args, **kwargs), None)

    def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` on the loop and block for its result.

        If the waiting thread is interrupted (``KeyboardInterrupt``), the
        task is cancelled before the interruption propagates.

        Returns:
            What the coroutine returned.

        Raises:
            WrongLoopError: If called on the aloop's own thread.
            LeasePoolNotStartedError: If the aloop is not running.
            concurrent.futures.CancelledError: If the task was cancelled.
            Exception: Whatever the coroutine raised.
        """
        self._refuse_own_thread("call")
        return _wait(self.submit(fn, *args, **kwargs), None)

    def call_with_timeout(
        self,
        timeout: float | None,
        fn: Callable[P, Awaitable[T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """As :meth:`call`, but give up after ``timeout`` seconds.

        Raises:
            TimeoutError: If the task did not finish in time; it is cancelled.
            ValueError: If ``timeout`` is negative, NaN or infinite.
        """
        seconds = check_optional_timeout("timeout", timeout)
        self._refuse_own_thread("call_with_timeout")
        return _wait(self.submit(fn, *args, **kwargs), seconds)

    def call_soon(
        self, fn: Callable[P, object], /, *args: P.args, **kwargs: P.kwargs
    ) -> asyncio.Handle:
        """Schedule the plain callback ``fn(*args, **kwargs)`` on the loop.

        Thread-safe and cheap (no task, no future); exceptions raised by
        ``fn`` go to the loop's exception handler.

        Raises:
            LeasePoolNotStartedError: If the aloop is not running.
        """
        callback = functools.partial(fn, *args, **kwargs)
        with self._lock:
            if not self._accepting:
                raise self._not_running()
            loop = self._loop
            assert loop is not None
            return loop.call_soon_threadsafe(callback)

    def call_sync(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run the plain callable ``fn(*args, **kwargs)`` on the loop thread.

        Blocks for the result; use it to touch loop-bound state (an
        ``asyncio.Queue``, an object's counters) from another thread.

        Raises:
            WrongLoopError: If called on the aloop's own thread.
            LeasePoolNotStartedError: If the aloop is not running.
        """
        self._refuse_own_thread("call_sync")
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def _run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # handed to the waiting thread
                future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise

        with self._lock:
            if not self._accepting:
                raise self._not_running()
            loop = self._loop
            assert loop is not None
            loop.call_soon_threadsafe(_run)
        return _wait(future, None)

    # ------------------------------------------------ neotasker-named API

    def spawn_coroutine_threadsafe(
        self, coro: Coroutine[Any, Any, T]
    ) -> concurrent.futures.Future[T]:
        """Run the coroutine object ``coro`` on the loop; return its future.

        If the aloop refuses the work, ``coro`` is closed so that it does not
        warn about never being awaited.

        Raises:
            LeasePoolNotStartedError: If the aloop is not running.
        """
        return self._schedule(lambda: coro, coro.close)

    def run_coroutine_threadsafe(
        self, coro: Coroutine[Any, Any, T], timeout: float | None = None
    ) -> T:
        """Run ``coro`` on the loop and block for its result.

        Args:
            coro: The coroutine object to run.
            timeout: Seconds to wait before cancelling it, ``None`` for no
                limit.

        Raises:
            WrongLoopError: If called on the aloop's own thread (``coro`` is
                closed).
            LeasePoolNotStartedError: If the aloop is not running.
            TimeoutError: If ``timeout`` passed; the task is cancelled.
        """
        if self.in_loop_thread():
            coro.close()
            self._refuse_own_thread("run_coroutine_threadsafe")
        return _wait(self.spawn_coroutine_threadsafe(coro), timeout)


def _resolve_future(future: concurrent.futures.Future[T], task: asyncio.Future[T]) -> None:
    resolve_from_thread(future, task)


def _wait(future: concurrent.futures.Future[T], timeout: float | None) -> T:
    """Block for ``future``; cancel it if the wait times out or is interrupted."""
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        if future.done():
            raise
        future.cancel()
        raise TimeoutError(
            f"the coroutine did not finish within {timeout} seconds and was "
            f"cancelled; pass a longer timeout"
        ) from None
    except BaseException:
        if not future.done():
            future.cancel()
        raise
