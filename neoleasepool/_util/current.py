"""The running item as its own code sees it: :func:`current_item`.

Whatever runs a user's function (a grinder's worker thread, a process
worker) first installs an :class:`ItemToken` for it on the running thread
and removes it afterwards. The function may then ask whether it should
stop (``current_item().cancelled``) or stop at a safe point
(``current_item().check()``). Threads cannot be killed, so on threads this
is the only way a time limit or a cancel reaches the work itself.

Installing costs one thread-local assignment per item: what is installed
is a *source* (an :class:`ItemToken`, or a grinder item that makes one on
demand), and nothing is built or computed unless the function looks.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable
from typing import Protocol

from ..exceptions import ItemTimeoutError, SoftTimeLimitExceeded

__all__ = [
    "ItemToken", "TokenSource", "chunk_started", "current_item", "install", "slot", "uninstall",
]

_local = threading.local()


class TokenSource(Protocol):
    """Something that can say, when asked, what its running item is."""

    def item_token(self) -> ItemToken:
        """The token of the running item."""


class ItemToken:
    """What a running function can learn about itself.

    Args:
        function: The function's name (for error messages).
        started: When it started, in :func:`time.monotonic` seconds.
        timeout: Its hard time limit in seconds, or ``None``.
        soft_timeout: Its soft time limit in seconds, or ``None``.
        ended: Tells whether its caller no longer waits for it (the item's
            future is done: cancelled, or failed by its time limit).
    """

    __slots__ = ("_ended", "function", "soft_timeout", "started", "timeout")

    def __init__(
        self,
        function: str,
        started: float,
        timeout: float | None = None,
        soft_timeout: float | None = None,
        ended: Callable[[], bool] | None = None,
    ) -> None:
        self.function = function
        self.started = started
        self.timeout = timeout
        self.soft_timeout = soft_timeout
        self._ended = ended

    def __repr__(self) -> str:
        return (
            f"<ItemToken {self.function} elapsed={self.elapsed:.3f}s "
            f"timeout={self.timeout} cancelled={self.cancelled}>"
        )

    def item_token(self) -> ItemToken:
        """Itself (a token is its own :class:`TokenSource`)."""
        return self

    @property
    def elapsed(self) -> float:
        """Seconds since the function started."""
        return time.monotonic() - self.started

    @property
    def time_left(self) -> float | None:
        """Seconds until the first time limit passes (negative once it has),
        or ``None`` without one."""
        limits = [t for t in (self.soft_timeout, self.timeout) if t is not None]
        return min(limits) - self.elapsed if limits else None

    @property
    def cancelled(self) -> bool:
        """Whether the function should stop: its caller cancelled it, or a
        time limit (soft or hard) passed."""
        return self._reason() is not None

    def check(self) -> None:
        """Raise if the function should stop; return otherwise.

        Raises:
            SoftTimeLimitExceeded: The soft limit passed (the hard one not yet).
            ItemTimeoutError: The hard limit passed.
            concurrent.futures.CancelledError: The caller cancelled the item.
        """
        reason = self._reason()
        if reason is not None:
            raise reason

    def _reason(self) -> BaseException | None:
        elapsed = self.elapsed
        # Where the item's future is known (a grinder's thread), the hard
        # limit counts once that future has failed by it: the function
        # cannot see it first and return a result the limit then drops.
        ended = None if self._ended is None else self._ended()
        if self.timeout is not None and elapsed >= self.timeout and ended is not False:
            return ItemTimeoutError(self.function, self.timeout, elapsed)
        if ended:
            return concurrent.futures.CancelledError(
                f"{self.function}() was cancelled by its caller"
            )
        if self.soft_timeout is not None and elapsed >= self.soft_timeout:
            return SoftTimeLimitExceeded(self.function, self.soft_timeout, elapsed, "soft limit")
        return None


def current_item() -> ItemToken:
    """The token of the item running on this thread.

    Raises:
        RuntimeError: Outside work run by a grinder or by neoleasepool's
            process pool (a plain executor call has no token).
    """
    source: TokenSource | None = getattr(_local, "source", None)
    if source is None:
        raise RuntimeError(
            "current_item() works only inside a function run by a WorkGrinder "
            "or by neoleasepool's process pool (not in a plain executor call)"
        )
    return source.item_token()


def install(source: TokenSource | None) -> TokenSource | None:
    """Make ``source`` this thread's running item; return the one it replaces."""
    previous: TokenSource | None = getattr(_local, "source", None)
    _local.source = source
    return previous


def uninstall(previous: TokenSource | None) -> None:
    """Restore the source :func:`install` replaced."""
    _local.source = previous


def slot() -> threading.local:
    """The thread-local a runner writes directly in its loop over items:
    ``source`` (the running item) and ``started`` (when its call started)."""
    return _local


def chunk_started() -> float:
    """When the call running on this thread started (monotonic seconds);
    an item without a time limit may share its call with others."""
    started: float | None = getattr(_local, "started", None)
    return time.monotonic() if started is None else started
