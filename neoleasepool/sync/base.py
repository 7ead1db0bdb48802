"""What every blocking facade shares: a name, an aloop, the scheduler protocol.

A facade runs its async core on an aloop and is registered with the
supervisor as a scheduler: the supervisor runs its async :meth:`loop`
(which only waits for the stop) and calls its ``stop(wait=...)``.  Its
blocking methods refuse to run on the aloop's own thread, where they would
wait for themselves.
"""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures
import contextlib
from typing import TypeVar

from ..exceptions import LeasePoolNotStartedError, WrongLoopError
from ..loops.aloop import ALoop
from ..types import WaitArg

__all__ = ["FacadeBase", "refuse_loop_thread", "wait_result"]

T = TypeVar("T")


def refuse_loop_thread(aloop: ALoop, api: str) -> None:
    """Raise if the caller runs on ``aloop``'s thread, where ``api`` would deadlock.

    Raises:
        WrongLoopError: Naming ``api`` and what to use there instead.
    """
    if aloop.in_loop_thread():
        raise WrongLoopError(
            f"{api}() cannot be called from the owning event-loop thread; use the "
            f"async API instead. ({api}() blocks, so it must not run on its aloop's "
            f"thread {aloop.name!r}; there await the async object, .manager or "
            ".grinder)"
        )


def wait_result(future: concurrent.futures.Future[T], timeout: float | None) -> T:
    """Block for ``future``; on timeout cancel it and raise ``TimeoutError``.

    An item that has not started never runs once cancelled; one that has
    started keeps running, and the message says which happened.
    """
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        what = "it was cancelled" if future.cancel() else "it had started and keeps running"
        raise TimeoutError(f"no result within timeout={timeout}s; {what}") from None


class FacadeBase(abc.ABC):
    """A named scheduler on an aloop; the base of both blocking facades.

    Args:
        name: The scheduler name.
        aloop: The aloop the async core runs on.
        owns_aloop: Whether the facade created that aloop and stops it.
    """

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

    @abc.abstractmethod
    def stop(self, wait: WaitArg = True, cancel_tasks: bool = False) -> None:
        """Stop the async core; each facade says how."""

    def _blocking(self, method: str) -> None:
        refuse_loop_thread(self.aloop, f"{type(self).__name__}.{method}")

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
