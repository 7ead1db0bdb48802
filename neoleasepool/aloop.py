"""Named asyncio loops in threads ("aloops") and the blocking bridge (layer 3).

An :class:`ALoop` is an asyncio event loop running in a thread of its own
(``supervisor_aloop_<name>``).  Code in other threads reaches it through
one small bridge, in the spirit of anyio's ``BlockingPortal``:

* :meth:`ALoop.call` runs an async function on the loop and blocks for its
  result; :meth:`ALoop.call_with_timeout` does the same with a deadline;
* :meth:`ALoop.submit` starts it and returns a
  :class:`concurrent.futures.Future` (cancelling that future cancels the
  task);
* :meth:`ALoop.call_soon` schedules a plain callback on the loop, and
  :meth:`ALoop.call_sync` runs one there and blocks for its result.

neotasker's ``spawn_coroutine_threadsafe`` and ``run_coroutine_threadsafe``
are built on the same machinery.  Every blocking entry point refuses to run
on the aloop's own thread (it would wait for itself forever) and every entry
point refuses work once the aloop is stopping, so a caller never waits on a
future that nobody will resolve.

Stopping follows one path, run by the loop thread itself: wait for the
remaining tasks (without limit, up to a deadline, or not at all), cancel
what is left and let the cancellations run, shut down async generators and
the default executor, then close the loop.  No step polls.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from ._futures import resolve_from_thread
from .exceptions import LeasePoolNotStartedError, WrongLoopError
from .types import Stats, WaitArg

if TYPE_CHECKING:
    from .supervisor import TaskSupervisor

__all__ = ["ALoop", "deadline_from_wait", "remaining"]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

#: Seconds each cancellation round may take before tasks are cancelled again.
CANCEL_GRACE_SECONDS = 2.0
#: Cancellation rounds before remaining tasks are abandoned with a warning.
CANCEL_ROUNDS = 3


def deadline_from_wait(wait: WaitArg) -> float | None:
    """Turn a ``wait`` argument into an absolute :func:`time.monotonic` deadline.

    Args:
        wait: ``True`` (no limit), ``False`` (do not wait) or seconds.

    Returns:
        ``None`` for no limit, otherwise the deadline.

    Raises:
        ValueError: If ``wait`` is a negative, NaN or infinite number, or not
            a bool or number.
    """
    from ._validation import check_duration

    if wait is True:
        return None
    if wait is False:
        return time.monotonic()
    return time.monotonic() + check_duration("wait", wait, allow_zero=True)


def remaining(deadline: float | None) -> WaitArg:
    """The ``wait`` argument left before ``deadline`` (``True`` if unbounded)."""
    if deadline is None:
        return True
    return max(0.0, deadline - time.monotonic())


class ALoop:
    """An asyncio event loop running in a thread of its own.

    Create aloops with :meth:`TaskSupervisor.create_aloop`, which stops them
    at shutdown; a bare ``ALoop`` must be stopped by its creator.

    Args:
        name: The aloop's name; a random one when ``None``.
        supervisor: The supervisor it belongs to, for messages only.
        daemon: Whether the thread is a daemon thread.
        thread_name: Overrides the thread name ``supervisor_aloop_<name>``.
    """

    def __init__(
        self,
        name: str | None = None,
        supervisor: TaskSupervisor | None = None,
        *,
        daemon: bool = False,
        thread_name: str | None = None,
    ) -> None:
        self.name = name if name is not None else uuid.uuid4().hex
        self.supervisor = supervisor
        self.daemon = daemon
        #: Kept for neotasker compatibility; nothing here waits by polling.
        self.poll_delay = 0.01
        self.thread: threading.Thread | None = None
        self._thread_name = thread_name or f"supervisor_aloop_{self.name}"
        self._lock = threading.RLock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread_id: int | None = None
        self._accepting = False
        self._cancelling = False
        self._stop_request: asyncio.Future[tuple[float | None, bool]] | None = None
        self._finished = threading.Event()
        self._finished.set()
        self._submitted = 0
        self._runs = 0

    def __repr__(self) -> str:
        state = (
            "active" if self._accepting else ("stopped" if self._finished.is_set() else "stopping")
        )
        return f"<ALoop {self.name!r} {state} submitted={self._submitted}>"

    # ------------------------------------------------------------------ state

    @property
    def active(self) -> bool:
        """Whether the aloop runs and accepts work."""
        return self._accepting

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The asyncio loop of the current (or last) run, or ``None``."""
        return self._loop

    def get_loop(self) -> asyncio.AbstractEventLoop | None:
        """Return the asyncio loop while the aloop is active, else ``None``."""
        return self._loop if self._accepting else None

    def in_loop_thread(self) -> bool:
        """Whether the caller runs on this aloop's thread."""
        return self._thread_id is not None and self._thread_id == threading.get_ident()

    def stats(self) -> Stats:
        """A JSON-serialisable snapshot of the aloop's state."""
        loop = self._loop
        tasks: int | None = 0
        if loop is not None and self._accepting:
            try:
                tasks = max(len(asyncio.all_tasks(loop)) - 1, 0)  # minus _serve
            except RuntimeError:  # the task set changed under us
                tasks = None
        return {
            "name": self.name,
            "active": self._accepting,
            "daemon": self.daemon,
            "thread": self._thread_name,
            "runs": self._runs,
            "submitted": self._submitted,
            "tasks": tasks,
        }

    # -------------------------------------------------------- start and stop

    def start(self) -> None:
        """Start the loop thread; the aloop takes work at once.

        Work handed over before the thread reaches its loop is queued on the
        loop and runs first.  Starting an active aloop does nothing; a
        stopped aloop starts a new loop in a new thread.
        """
        with self._lock:
            if self._accepting:
                return
            if not self._finished.is_set():
                # A previous run is still winding down; let it finish first.
                self._join(self.thread)
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._stop_request = loop.create_future()
            self._cancelling = False
            self._finished = threading.Event()
            thread = threading.Thread(
                target=self._run,
                args=(loop, self._stop_request, self._finished),
                name=self._thread_name,
                daemon=self.daemon,
            )
            self.thread = thread
            thread.start()  # returns once the thread runs, so it has an ident
            self._thread_id = thread.ident
            self._accepting = True
            self._runs += 1
        logger.debug("aloop started name=%s", self.name)

    def stop(self, wait: WaitArg = True, cancel_tasks: bool = False) -> None:
        """Stop the aloop: finish or cancel its tasks, then close the loop.

        Args:
            wait: ``True`` waits for the remaining tasks without limit;
                a number of seconds waits that long, then cancels what is
                left; ``False`` cancels at once and returns without joining
                the thread.
            cancel_tasks: Cancel every task at once, whatever ``wait`` says.

        Called from the aloop's own thread, the stop is requested and the
        method returns at once: the thread cannot wait for itself.
        Stopping a stopped aloop does nothing.
        """
        deadline = deadline_from_wait(wait)
        thread = self.request_stop(deadline, cancel_tasks)
        if wait is not False:
            self._join(thread)

    def request_stop(
        self, deadline: float | None, cancel_tasks: bool = False
    ) -> threading.Thread | None:
        """Ask the loop thread to stop, without waiting for it.

        The supervisor uses this to stop all its aloops in parallel, then
        joins them with :meth:`join`.

        Args:
            deadline: :func:`time.monotonic` time after which remaining tasks
                are cancelled, or ``None`` to wait for them without limit.
            cancel_tasks: Cancel every task at once.

        Returns:
            The thread to join, or ``None`` if the aloop was not running.
        """
        with self._lock:
            if not self._accepting:
                return self.thread if not self._finished.is_set() else None
            self._accepting = False
            loop, request, thread = self._loop, self._stop_request, self.thread
        assert loop is not None and request is not None
        try:
            loop.call_soon_threadsafe(_resolve_request, request, (deadline, cancel_tasks))
        except RuntimeError:
            # The loop is already closed: its thread is gone.
            self._finished.set()
            return None
        logger.debug("aloop stop requested name=%s cancel=%s", self.name, cancel_tasks)
        return thread

    def join(self, timeout: float | None = None) -> None:
        """Wait until the current run has finished (not on its own thread)."""
        self._join(self.thread, timeout)

    def _join(self, thread: threading.Thread | None, timeout: float | None = None) -> None:
        if thread is None or thread is threading.current_thread():
            return
        thread.join(timeout)

    def _run(
        self,
        loop: asyncio.AbstractEventLoop,
        request: asyncio.Future[tuple[float | None, bool]],
        finished: threading.Event,
    ) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve(request))
        except BaseException:
            logger.exception("aloop crashed name=%s", self.name)
            raise
        finally:
            with self._lock:
                self._accepting = False
            asyncio.set_event_loop(None)
            loop.close()
            self._thread_id = None
            finished.set()
            logger.debug("aloop stopped name=%s", self.name)

    async def _drain(self, deadline: float | None, cancel: bool) -> None:
        """Wait for the other tasks until ``deadline``, then cancel the rest."""
        me = asyncio.current_task()

        def others() -> set[asyncio.Task[Any]]:
            return {t for t in asyncio.all_tasks() if t is not me}

        if not cancel:
            while pending := others():
                timeout = None if deadline is None else deadline - time.monotonic()
                if timeout is not None and timeout <= 0:
                    logger.warning(
                        "aloop wait expired name=%s cancelling=%s",
                        self.name,
                        len(pending),
                    )
                    break
                await asyncio.wait(pending, timeout=timeout)
        self._cancelling = True
        for _ in range(CANCEL_ROUNDS):
            pending = others()
            if not pending:
                return
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=CANCEL_GRACE_SECONDS)
        left = others()
        if left:
            logger.warning(
                "aloop abandons tasks that ignore cancellation name=%s tasks=%s",
                self.name,
                len(left),
            )

    async def _serve(self, request: asyncio.Future[tuple[float | None, bool]]) -> None:
        """Serve until a stop is requested, then drain and clean up."""
        deadline, cancel = await request
        await self._drain(deadline, cancel)
        loop = asyncio.get_running_loop()
        await loop.shutdown_asyncgens()
        await loop.shutdown_default_executor()

    # ------------------------------------------------------- blocking bridge

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
        from ._validation import check_optional_timeout

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


def _resolve_request(
    request: asyncio.Future[tuple[float | None, bool]], value: tuple[float | None, bool]
) -> None:
    if not request.done():
        request.set_result(value)


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
