"""Time limits the grinder enforces itself: on threads, and on backends
that cannot stop a call.

A process pool of our own (a backend that ``stops_calls``) enforces an
item's limits itself: it fails the call when the limit passes and stops
the worker running it. Everywhere else the grinder keeps the time:

* **Threads** (``in_process``): a timed item travels alone; when its call
  starts, the worker thread tells the loop (:meth:`Overtime.started`),
  which arms a timer. When the limit passes, the item's future fails with
  :class:`~neoleasepool.ItemTimeoutError` at once. The thread cannot be
  killed: the function sees ``current_item().cancelled`` and its call, so
  its worker's slot, stays out until it returns. Until then the item is
  *overdue* (``stats()["items_overdue"]``).
* **Other backends** (a Dask cluster, the stdlib process pool): the timer
  starts when the call is sent, and the work runs on where it is.

Everything here runs on the grinder's loop except :meth:`Overtime.started`.
The timer and a result that arrives at the same moment both end the item
through its future, which takes only the first: the item ends once.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from .._util.loops import LoopBinding
from ..exceptions import ItemTimeoutError
from .items import Item

__all__ = ["Overtime"]

_THREADS = "a thread cannot be stopped: the function runs on until it returns"
_ELSEWHERE = "this backend cannot stop a running call: it runs on"


class Overtime:
    """The timers of a grinder's timed items, and its overdue items (loop).

    Args:
        binding: The grinder's loop binding.
    """

    def __init__(self, binding: LoopBinding) -> None:
        self._binding = binding
        self._timers: dict[Item, asyncio.TimerHandle] = {}
        self.overdue: set[Item] = set()  # failed by their limit, still running
        self.timed_out = 0

    def started(self, item: Item, at: float) -> None:
        """``item`` started running on a worker thread at ``at`` (any thread)."""
        loop = self._binding.loop
        if loop is None:
            return  # stopped: its stop ends the item
        try:
            loop.call_soon_threadsafe(self.arm, item, at, _THREADS)
        except RuntimeError:
            pass  # the loop closed after a cancelling stop, which ended the item

    def arm(self, item: Item, at: float, how: str = _ELSEWHERE) -> None:
        """Fail ``item`` when its hard limit, counted from ``at``, passes (loop)."""
        limits = item.limits
        if limits is None or limits[0] is None or item.done():
            return
        loop = asyncio.get_running_loop()
        delay = at + limits[0] - time.monotonic()
        self._timers[item] = loop.call_later(max(0.0, delay), self._expire, item, at, how)

    def _expire(self, item: Item, at: float, how: str) -> None:
        self._timers.pop(item, None)
        limits = item.limits
        if item.done() or limits is None or limits[0] is None:
            return  # it ended first
        error = ItemTimeoutError(item.name(), limits[0], time.monotonic() - at, how)
        if item.resolve((False, error)):  # not if its caller cancelled it meanwhile
            self.timed_out += 1
            self.overdue.add(item)

    def reset(self) -> None:
        """A new run: timers and overdue marks of the last one go (its
        items have ended; a function still running holds only its thread)."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self.overdue.clear()

    def finished(self, item: Item) -> None:
        """``item``'s call ended (loop): its timer and overdue mark go."""
        timer = self._timers.pop(item, None)
        if timer is not None:
            timer.cancel()
        self.overdue.discard(item)

    def stats(self) -> dict[str, Any]:
        return {"items_timed_out": self.timed_out, "items_overdue": len(self.overdue)}
