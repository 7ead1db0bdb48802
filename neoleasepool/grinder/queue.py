"""The grinder's queue and its batching rule, owned by the grinder's loop.

Items wait here in state ``QUEUED`` (``items.py``) until a batch takes them.
A batch is *ready* when ``threshold`` items are pending, when the oldest has
waited ``max_wait`` seconds, or at once while the grinder stops; it takes
at most ``threshold`` items. Solo items (``map`` chunks, which are already
batches of inputs) wait in their own deque and make a batch ready at once,
whatever the rule says, for as long as any of them is pending. A
cancelled item is dropped in O(1): its state says it is gone, and the head
of the queue is trimmed lazily.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from .items import ENDED, QUEUED, RUNNING, Item, ThreadItem, forget_call

__all__ = ["ItemQueue"]


class ItemQueue:
    """Pending items in arrival order (loop thread only).

    Args:
        threshold: Pending items that make a batch ready; the most one
            batch takes.
        max_wait: Seconds the oldest item waits before a batch is ready anyway.
    """

    __slots__ = ("_hurry", "_items", "_solo", "_solo_pending", "max_wait", "pending", "threshold")

    def __init__(self, threshold: int, max_wait: float) -> None:
        self.threshold = threshold
        self.max_wait = max_wait
        self._items: deque[Item] = deque()
        self._solo: deque[Item] = deque()  # solo items (map chunks)
        self.pending = 0  # items in state QUEUED, of both deques
        self._solo_pending = 0  # ... of which solo
        self._hurry = False  # a batch should form now, whatever the rule says

    def __repr__(self) -> str:
        return f"<ItemQueue pending={self.pending} threshold={self.threshold}>"

    def append(self, item: Item) -> bool:
        """Queue ``item``; whether the batcher should look again (the queue
        was empty, or it just reached the threshold)."""
        item.state = QUEUED
        self._items.append(item)
        self.pending += 1
        return self.pending == 1 or self.pending == self.threshold

    def append_solo(self, item: Item) -> None:
        """Queue a solo item: a batch is ready at once while one is pending."""
        item.state = QUEUED
        self._solo.append(item)
        self.pending += 1
        self._solo_pending += 1

    def put_back(self, items: list[Item]) -> None:
        """Return ``items`` (taken by a batch, never run) to the head, in order."""
        for item in reversed(items):
            item.state = QUEUED
            item.started_at = 0.0  # it waits again
            if item.solo:
                self._solo.appendleft(item)
                self._solo_pending += 1
            else:
                self._items.appendleft(item)
        self.pending += len(items)

    def hurry(self) -> None:
        """Make the next batch ready at once (items taken back from the
        thread hand-off have waited long enough)."""
        self._hurry = True

    def drop(self, item: Item) -> bool:
        """End a cancelled ``item`` if it is queued here; whether it was."""
        if item.state != QUEUED:
            return False
        item.state = ENDED
        forget_call(item)
        self.pending -= 1
        if item.solo:
            self._solo_pending -= 1
        self._trim()
        return True

    def ready(self, stopping: bool) -> bool:
        """Whether a batch should form now."""
        if not self.pending:
            return False
        if self.pending >= self.threshold or stopping or self._hurry or self._solo_pending:
            return True
        return time.monotonic() >= self.due()

    def due(self) -> float:
        """``time.monotonic()`` at which the oldest item has waited long enough."""
        self._trim()
        return self._items[0].enqueued_at + self.max_wait

    def oldest_wait(self) -> float:
        """Seconds the oldest pending item has waited (0 when none is)."""
        if not self.pending:
            return 0.0
        self._trim()
        heads = [q[0].enqueued_at for q in (self._items, self._solo) if q]
        return max(0.0, time.monotonic() - min(heads))

    def take(self, limit: int | None = None) -> list[Item]:
        """Take up to ``limit`` (default: the threshold) items for a batch,
        solo items first; they move to ``RUNNING``."""
        limit = self.threshold if limit is None else limit
        self._hurry = False
        taken: list[Item] = []
        now = time.monotonic()
        if self._solo_pending:
            _take_from(self._solo, taken, limit, now)
            self._solo_pending -= len(taken)
        _take_from(self._items, taken, limit, now)
        self.pending -= len(taken)
        self._trim()
        return taken

    def take_all(self) -> list[Item]:
        """Take every pending item (a crash or a cancelling stop ends them)."""
        return self.take(self.pending)

    def hand_over(self, offer: Callable[[ThreadItem], bool]) -> None:
        """Give the thread items at the head to ``offer`` while it takes them
        (the hand-off moves each to ``HANDED`` as it accepts it)."""
        items = self._items
        self._trim()
        while items and type(items[0]) is ThreadItem and offer(items[0]):
            items.popleft()
            self.pending -= 1
            self._trim()

    def _trim(self) -> None:
        for items in (self._items, self._solo):
            while items and items[0].state != QUEUED:
                items.popleft()


def _take_from(items: deque[Item], taken: list[Item], limit: int, now: float) -> None:
    """Move queued items from the head of ``items`` to ``taken`` (``RUNNING``,
    started ``now``) until it holds ``limit``."""
    while items and len(taken) < limit:
        item = items.popleft()
        if item.state == QUEUED:
            item.state = RUNNING
            item.started_at = now
            taken.append(item)
