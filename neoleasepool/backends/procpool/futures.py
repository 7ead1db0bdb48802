"""The futures :class:`~.pool.WorkerPool` returns, and the calls they stand for.

A :class:`CallFuture` can be cancelled while its call runs. The pool never
calls ``set_running_or_notify_cancel()`` when it sends a call to a worker,
so the future stays *pending* (in ``concurrent.futures``' terms) until it
has an outcome, and the base class's ``cancel()`` succeeds. The subclass
then does what the base class leaves to the executor: it notifies the
waiters of ``concurrent.futures.wait`` and ``as_completed`` (once, however
many threads cancel), and asks the pool to stop the worker running the
call. ``running()`` tells the truth: whether a worker holds the call.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["Call", "CallFuture"]

T = TypeVar("T")

# Guards each future's "first cancel" flag. One lock for all futures: it is
# held for a flag flip, and only by cancel(); never while callbacks run.
_FIRST_CANCEL = threading.Lock()


class CallFuture(concurrent.futures.Future[T]):
    """A future whose ``cancel()`` also stops its call while it runs.

    Args:
        on_cancel: Called once after the first successful cancel, with no
            lock held; it wakes the pool's manager thread.
    """

    def __init__(self, on_cancel: Callable[[], None]) -> None:
        super().__init__()
        self._on_cancel = on_cancel
        self._cancel_seen = False
        #: Whether a worker holds the call (written by the manager thread).
        self.sent = False

    def __repr__(self) -> str:
        if self.running():
            return f"<{type(self).__name__} at {id(self):#x} state=running>"
        return super().__repr__()

    def running(self) -> bool:
        """Whether the call is on a worker and has no outcome yet."""
        return self.sent and not self.done()

    def cancel(self) -> bool:
        """Cancel the call, queued or running.

        A queued call is never sent; a running one has its worker stopped
        (and replaced when work waits).

        Returns:
            ``False`` if the call already has an outcome, ``True`` otherwise.
        """
        # The base cancel runs the done-callbacks; no lock of ours is held.
        if not super().cancel():
            return False
        with _FIRST_CANCEL:
            first = not self._cancel_seen
            self._cancel_seen = True
        if first:
            # CANCELLED -> CANCELLED_AND_NOTIFIED: wakes wait()/as_completed().
            # The pool never calls this, so here it runs exactly once.
            self.set_running_or_notify_cancel()
            self._on_cancel()
        return True


@dataclass(eq=False)
class Call:
    """One submitted call, from its queue to its outcome.

    Attributes:
        future: Its future.
        frame: The pickled call, ready to send.
        name: The function's name, for messages.
        timeout: Its hard time limit in seconds (from when it is sent).
    """

    future: CallFuture[Any]
    frame: bytes | memoryview
    name: str
    timeout: float | None
