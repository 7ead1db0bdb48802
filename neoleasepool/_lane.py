"""Thread submissions handed straight to leased worker threads (layer 2).

On the grinder's normal path an item submitted from another thread crosses
two threads before it runs: the caller posts it to the grinder's loop, and
the loop hands a batch to a leased pool.  For tiny items those hand-offs are
most of the cost.  A :class:`DirectLane` removes the loop from that path
while a lease is already held.

When a batch on an in-process (thread) lease holds items from other threads,
the grinder also starts *runners* on the lease's worker threads.  A runner
serves the lane: callers put their items straight into it, and a runner
takes each one, runs it and resolves its future, one hand-off each way, as
a ``ThreadPoolExecutor`` does.  A runner leaves when no item came for
``linger`` seconds, when its lease's reuse window ends (while the lane is
open) or the lease stops being live, or when the lane closes; the batch (and so the lease) ends when
its runners have left.

The lane *closes* when the grinder's loop wants the lease back (it queued
work that must go through a batch) and when the grinder stops: offers then
fail, so callers go back to the loop's path, and runners finish what the
lane holds before they leave.  Adding a runner reopens it.

Exactly once: an offer succeeds only under the lock while a runner is
registered and the lane is open, and the last runner to leave takes what is
left under the same lock, handing it to ``on_leftovers`` (the loop's path).
Every item the lane accepts is therefore run, cancelled, or handed back.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from ._items import ENDED, ThreadItem, call_captured

__all__ = ["DirectLane", "LaneRunner"]

#: Longest a runner waits for the next item before it leaves, in seconds
#: (the grinder's ``max_wait_seconds`` lowers it).
LINGER_SECONDS = 0.005


class LaneRunner:
    """One runner's registration: its limits, and whether it has left."""

    __slots__ = ("active", "left", "linger", "served", "until")

    def __init__(self, linger: float, until: float, active: Callable[[], bool]) -> None:
        self.linger = linger
        self.until = until
        self.active = active
        self.left = False
        self.served = 0  # written only by the thread serving it

    def __repr__(self) -> str:
        return f"<LaneRunner linger={self.linger} served={self.served} left={self.left}>"


class DirectLane:
    """Items from other threads, served by runners on leased worker threads.

    Args:
        on_leftovers: Called (from a worker thread) with items the lane
            accepted but no runner will run, in order; they go back to the
            grinder's loop.
    """

    def __init__(self, on_leftovers: Callable[[list[ThreadItem]], None]) -> None:
        self._on_leftovers = on_leftovers
        self._lock = threading.Lock()
        self._items: queue.SimpleQueue[ThreadItem | None] = queue.SimpleQueue()
        self._runners: set[LaneRunner] = set()
        self._open = False
        self._cancelling = False
        self._served_by_gone = 0
        self.offered = 0

    def __repr__(self) -> str:
        state = "open" if self._open else "closed"
        return (
            f"<DirectLane {state} runners={len(self._runners)} holding={self._items.qsize()}>"
        )

    @property
    def runners(self) -> int:
        """Runners registered and not yet left."""
        return len(self._runners)

    @property
    def served(self) -> int:
        """Items run by runners so far."""
        with self._lock:
            return self._served_by_gone + sum(r.served for r in self._runners)

    @property
    def is_open(self) -> bool:
        """Whether offers are taken now (runners serve, and it is not closed)."""
        return self._open

    def offer(self, item: ThreadItem, *, new: bool = True) -> bool:
        """Hand ``item`` to the runners if any is serving; ``False`` if not.

        Args:
            new: Count ``item`` in :attr:`offered` (``False`` for an item
                the grinder counted already).
        """
        with self._lock:
            if not self._open:
                return False
            if new:
                self.offered += 1
            self._items.put(item)
        return True

    def add_runner(self, linger: float, until: float, active: Callable[[], bool]) -> LaneRunner:
        """Register a runner (and open the lane); pass it to :meth:`serve`.

        Args:
            linger: Seconds the runner waits for a next item before leaving.
            until: ``time.monotonic()`` after which it takes no more items.
            active: Whether its lease still takes work (any thread).
        """
        runner = LaneRunner(linger, until, active)
        with self._lock:
            self._runners.add(runner)
            self._open = True
            self._cancelling = False
        return runner

    def close(self, *, cancel: bool = False) -> None:
        """Refuse new offers; runners finish what the lane holds and leave.

        With ``cancel``, the items the lane holds are cancelled instead, and
        items still running end cancelled.
        """
        with self._lock:
            self._open = False
            if cancel:
                self._cancelling = True
            held = self._take_all_locked() if cancel else []
            wake = len(self._runners)
        for item in held:
            item.state = ENDED
            item.cancel()
        for _ in range(wake):
            self._items.put(None)  # wakes a waiting runner to see the lane closed

    def serve(self, runner: LaneRunner) -> tuple[int, float]:
        """Run the lane's items on this (worker) thread until ``runner`` leaves.

        Returns:
            How many items ran, and the seconds they took.
        """
        get = self._items.get
        busy = 0.0
        try:
            while True:
                # Past its reuse window a runner takes nothing more, unless
                # the lane is closed: then it finishes what the lane holds
                # (a draining stop must not send it back to a loop that is
                # no longer forming batches).
                if not runner.active() or (self._open and time.monotonic() > runner.until):
                    return runner.served, busy
                try:
                    # Open: wait up to ``linger`` for an item.  Closed: take
                    # what the lane still holds, without waiting.
                    item = get(self._open, runner.linger)
                except queue.Empty:
                    return runner.served, busy
                if item is None:
                    continue
                fn = item.fn
                if fn is None or item.cancelled():
                    continue
                start = time.perf_counter()
                outcome = call_captured(fn, item.args, item.kwargs)
                busy += time.perf_counter() - start
                runner.served += 1
                item.fn, item.args, item.kwargs = None, (), {}
                item.state = ENDED
                if self._cancelling:
                    item.cancel()
                else:
                    item.resolve(outcome)
        finally:
            self.leave(runner)

    def leave(self, runner: LaneRunner) -> None:
        """Unregister ``runner`` (idempotent); the last one out hands what is
        left to ``on_leftovers``.  Also called when a runner never ran."""
        with self._lock:
            if runner.left:
                return
            runner.left = True
            self._served_by_gone += runner.served
            self._runners.discard(runner)
            if self._runners:
                return
            self._open = False
            leftovers = self._take_all_locked()
        if leftovers:
            self._on_leftovers(leftovers)

    def _take_all_locked(self) -> list[ThreadItem]:
        items: list[ThreadItem] = []
        while True:
            try:
                item = self._items.get_nowait()
            except queue.Empty:
                return items
            if item is not None:
                items.append(item)

    def stats(self) -> dict[str, Any]:
        """Runners, items waiting, and items served so far."""
        return {
            "lane_runners": len(self._runners),
            "lane_waiting": self._items.qsize(),
            "items_direct": self.served,
        }
