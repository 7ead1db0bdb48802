"""Handing things from other threads to an event loop, one wake-up per burst.

``loop.call_soon_threadsafe`` per item writes to the loop's self-pipe and
costs the loop a wake-up per item.  A :class:`Mailbox` collects items posted
from any thread and schedules a single delivery while one is pending: a burst
of posts from many threads reaches the loop as one list.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Mailbox"]

T = TypeVar("T")


class Mailbox(Generic[T]):
    """Items posted from any thread, delivered to a loop in batches.

    Args:
        deliver: Called on the loop with every item posted since the last
            delivery, in posting order.
    """

    __slots__ = ("_armed", "_deliver", "_items", "_lock")

    def __init__(self, deliver: Callable[[list[T]], None]) -> None:
        self._deliver = deliver
        self._items: list[T] = []
        self._armed = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Mailbox holding={len(self._items)} armed={self._armed}>"

    def post(self, loop: asyncio.AbstractEventLoop, item: T) -> None:
        """Add ``item``; schedule a delivery on ``loop`` unless one is pending.

        Raises:
            RuntimeError: If ``loop`` is closed (the item is not kept).
        """
        with self._lock:
            self._items.append(item)
            if self._armed:
                return
            self._armed = True
        try:
            loop.call_soon_threadsafe(self._on_loop)
        except RuntimeError:
            with self._lock:
                self._armed = False
                if item in self._items:
                    self._items.remove(item)
            raise

    def take(self) -> list[T]:
        """Remove and return everything posted so far (any thread)."""
        with self._lock:
            items, self._items = self._items, []
            self._armed = False
        return items

    def _on_loop(self) -> None:
        items = self.take()
        if items:
            self._deliver(items)
