"""Loop ownership.

An async core object belongs to the event loop that started it.  A
:class:`LoopBinding` remembers that loop and its thread, and turns a call
from the wrong place into a :class:`~neoleasepool.exceptions.WrongLoopError`
that names the API to use instead, rather than letting it corrupt state or
deadlock.  The messages open with leasepool 0.1.3's sentences ("must be
called from its owning event loop", "cannot be called from the owning
event-loop thread"), which its users' tests match.
"""

from __future__ import annotations

import asyncio
import threading

from ..exceptions import WrongLoopError

__all__ = ["LoopBinding"]


class LoopBinding:
    """The loop (and thread) an async object is bound to.

    Args:
        owner: Class name used in error messages, e.g. ``"WorkGrinder"``.
        wrong_loop_rule: The sentence that opens a wrong-loop error; the
            default is ``"<owner>.<method>() must be called from its owning
            event loop."``.
    """

    __slots__ = ("_loop", "_owner", "_rule", "_thread_id")

    def __init__(self, owner: str, wrong_loop_rule: str | None = None) -> None:
        self._owner = owner
        self._rule = wrong_loop_rule
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread_id: int | None = None

    def __repr__(self) -> str:
        return f"<LoopBinding {self._owner} loop={self._loop!r}>"

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The bound loop, or ``None`` when unbound."""
        return self._loop

    def bind(self) -> asyncio.AbstractEventLoop:
        """Bind to the running loop and return it.

        Raises:
            RuntimeError: If no loop is running in this thread.
        """
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._thread_id = threading.get_ident()
        return loop

    def unbind(self) -> None:
        """Forget the loop, so a later ``start()`` may bind another."""
        self._loop = None
        self._thread_id = None

    def on_loop_thread(self) -> bool:
        """Whether the caller runs on the bound loop's thread."""
        return self._thread_id is not None and self._thread_id == threading.get_ident()

    def require_owner(
        self, method: str, alternative: str
    ) -> asyncio.AbstractEventLoop:
        """Return the bound loop if the caller runs on it.

        Args:
            method: The method being called, for the message.
            alternative: The API to use from other threads.

        Raises:
            WrongLoopError: If unbound, or called from another loop or thread.
        """
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or running is not loop:
            call = f"{self._owner}.{method}()"
            rule = self._rule or f"{call} must be called from its owning event loop."
            raise WrongLoopError(
                f"{rule} ({call} was called from another loop or thread; the owning "
                f"loop is the one that started the {self._owner}; from other threads "
                f"or loops use {alternative})"
            )
        return loop

    def require_foreign_thread(
        self, method: str, alternative: str
    ) -> asyncio.AbstractEventLoop | None:
        """Return the bound loop if the caller is *not* on its thread.

        Thread-safe entry points call this so that a call from the owning
        loop's thread fails at once instead of deadlocking.

        Args:
            method: The method being called, for the message.
            alternative: The API to use on the owning loop.

        Raises:
            WrongLoopError: If called from the bound loop's thread.
        """
        if self.on_loop_thread():
            raise WrongLoopError(
                f"{self._owner}.{method}() cannot be called from the owning event-loop "
                f"thread; use the async API instead. ({method}() would block or "
                f"deadlock that loop; there use {alternative})"
            )
        return self._loop
