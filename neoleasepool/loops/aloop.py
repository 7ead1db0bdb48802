"""Named asyncio loops in threads ("aloops").

An :class:`ALoop` is an asyncio event loop running in a thread of its own
(``supervisor_aloop_<name>``).  Code in other threads reaches it through the
blocking bridge it inherits from :class:`~neoleasepool.loops.portal.LoopPortal`:
``call``, ``call_with_timeout``, ``submit``, ``call_soon``, ``call_sync``
and neotasker's ``spawn_coroutine_threadsafe``/``run_coroutine_threadsafe``.

Stopping follows one path, run by the loop thread itself: wait for the
remaining tasks (without limit, up to a deadline, or not at all), cancel
what is left and let the cancellations run, shut down async generators and
the default executor, then close the loop.  No step polls, and a stop
requested from the aloop's own thread never joins that thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from typing import Any, Protocol

from .._util.deadlines import deadline_from_wait
from ..types import Stats, WaitArg
from .lag import LagProbe
from .portal import LoopPortal

__all__ = ["ALoop", "LoopOwner"]

logger = logging.getLogger("neoleasepool.aloop")

#: Seconds each cancellation round may take before tasks are cancelled again.
CANCEL_GRACE_SECONDS = 2.0
#: Cancellation rounds before remaining tasks are abandoned with a warning.
CANCEL_ROUNDS = 3


class LoopOwner(Protocol):
    """What an aloop knows of the supervisor that owns it: its id.

    Aloops sit below the supervisor, so they hold it through this protocol
    and never import it.
    """

    @property
    def id(self) -> str: ...


class ALoop(LoopPortal):
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
        supervisor: LoopOwner | None = None,
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
        #: How late the loop runs its timers (``stats()["lag_seconds"]``).
        self.lag = LagProbe()

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
            **self.lag.stats(),
        }

    # -------------------------------------------------------- start and stop

    def start(self) -> None:
        """Start the loop thread; the aloop takes work at once.

        Work handed over before the thread reaches its loop is queued on the
        loop and runs first.  Starting an active aloop does nothing; a
        stopped aloop starts a new loop in a new thread.
        """
        while True:
            with self._lock:
                if self._accepting:
                    return
                previous = self.thread
                if (
                    self._finished.is_set()
                    or previous is None
                    or previous is threading.current_thread()
                ):
                    self._start_locked()
                    break
            # A previous run is still winding down.  Its thread takes the lock
            # on its way out, so join it without holding the lock, then look
            # again: another start() may have won the race meanwhile.
            self._join(previous)
        logger.debug("aloop started name=%s", self.name)

    def _start_locked(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._stop_request = loop.create_future()
        self.lag.start(loop)  # (the loop runs nothing before its thread starts)
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
            self.lag.stop()
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


def _resolve_request(
    request: asyncio.Future[tuple[float | None, bool]], value: tuple[float | None, bool]
) -> None:
    if not request.done():
        request.set_result(value)
