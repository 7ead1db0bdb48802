"""Event loops in threads ("aloops") and the blocking portal.

A :class:`~.portal.LoopPortal` is the one way sync code calls into a loop;
an :class:`~.aloop.ALoop` is a named loop in a thread of its own. See
``doc/architecture.md``.
"""

from __future__ import annotations

from .aloop import ALoop

__all__ = ["ALoop"]
