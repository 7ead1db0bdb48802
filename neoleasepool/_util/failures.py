"""The last few failures of a component, kept for people to look at.

Each long-lived component that runs user work (a grinder, a background
worker) keeps a :class:`FailureLog`: a ring of its last
:data:`KEPT` failures, so memory does not grow with uptime. An entry says
when, where (the function's name), the error's type and its message cut
to :data:`MESSAGE_CHARS` characters: never the arguments or results of the
work, and never a traceback (which holds the work's locals).

Appending to a ``deque`` with a ``maxlen`` is one atomic step, with or
without the GIL, so any thread may record without a lock.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

__all__ = ["KEPT", "MESSAGE_CHARS", "FailureLog", "cut", "raised_in"]

#: Failures kept per component.
KEPT = 20
#: The longest message kept, in characters.
MESSAGE_CHARS = 160


def cut(text: str, limit: int = MESSAGE_CHARS) -> str:
    """``text`` on one line, at most ``limit`` characters (ending in "...")."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _text_of(error: BaseException) -> str:
    """``str(error)``, or a placeholder if the error cannot be printed."""
    try:
        return str(error)
    except Exception:  # a user's __str__ that raises
        return "<the error's message could not be read>"


def raised_in(error: BaseException) -> str:
    """The name of the function ``error`` was raised in (its traceback's
    innermost frame), or ``"unknown"`` without a traceback."""
    tb = error.__traceback__
    if tb is None:
        return "unknown"
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    return getattr(code, "co_qualname", code.co_name)


class FailureLog:
    """A ring of a component's last failures (any thread may record)."""

    def __init__(self, kept: int = KEPT) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=kept)

    def __len__(self) -> int:
        return len(self._entries)

    def record(self, where: str, error: BaseException) -> None:
        """Keep ``error``, raised by ``where`` (a function's name). Never
        raises: it runs on paths that must go on (an item's end)."""
        self._entries.append({
            "time": time.time(),
            "where": cut(where, 80),
            "error": type(error).__name__,
            "message": cut(_text_of(error)),
        })

    def recent(self) -> list[dict[str, Any]]:
        """The kept failures, oldest first (JSON-serialisable copies)."""
        return [dict(entry) for entry in list(self._entries)]
