"""Thread submissions handed straight to idle leased worker threads (layer 2).

On the grinder's normal path an item submitted from another thread crosses
two threads before it runs: the caller posts it to the grinder's loop, and
the loop hands a batch to a leased pool.  For tiny items those hand-offs are
most of the cost.  A :class:`DirectLane` removes the loop from that path
while a lease is already held.

When a batch holding items from other threads runs on an in-process (thread)
lease, the grinder also queues *runners* on the lease's worker threads.  A
runner serves the lane: while it waits for work it is *idle*, and a caller's
item goes straight to an idle runner, which runs it and resolves its future,
one hand-off each way, as a ``ThreadPoolExecutor`` does.

The lane takes an item only if a started runner is free for it (idle, or
just done with its item), so an item never waits behind a running item or a
runner still queued behind other work, and an item submitted from a
runner's own thread is refused (the job that submitted it may wait for it):
a refused item takes the loop's path.

A runner leaves when the lane accepted no item for ``linger`` seconds (not
merely none reached it: under the GIL an idle runner can lose every race
for items to the others for a while, and a lane that shrank to one runner
would serialize its callers; but it leaves after ``STARVED_LINGERS``
lingers without an item of its own), when its lease's
reuse window ends (while the lane is open) or the lease stops being live,
or when the lane closes; the batch (and so the lease) ends when its runners
have left.  The lane *closes* when the grinder's loop wants the lease back
(work queued on the loop forms a batch) and when the grinder stops: offers
then fail, and runners finish what the lane holds before they leave.
Adding a runner reopens it.  Each run of the grinder gets a fresh lane, so
runners left over from a cancelling stop cannot serve the next run.

Exactly once: an offer succeeds only under the lock, and only while more
runners are idle than items wait; a runner that stops serving hands the
items it leaves without an idle runner to ``on_leftovers`` (the loop's path),
or cancels them if the lane was closed with ``cancel``.  Every item the lane
accepts is therefore run, cancelled, or handed back.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from .items import ENDED, ThreadItem, call_captured

__all__ = ["DirectLane", "LaneRunner"]

#: How long a runner stays after the last item the lane accepted, in
#: seconds: several GIL switch intervals (5 ms each), so that a busy lane
#: keeps its runners, and short enough to give the lease back soon after.
LINGER_SECONDS = 0.02

#: A runner that other runners beat to every item leaves after this many
#: lingers without one, even while items keep coming: it holds a lease that
#: others (other grinders, say) may be waiting for.
STARVED_LINGERS = 10

#: A runner checks that its lease is still live once per this many items.
ACTIVE_CHECK_EVERY = 8


class LaneRunner:
    """One runner's registration: its limits, its current item, and whether it has left."""

    __slots__ = (
        "active", "current", "expired", "finished", "left", "linger", "served", "thread", "until",
    )

    def __init__(self, linger: float, until: float, active: Callable[[], bool]) -> None:
        self.linger = linger
        self.until = until
        self.active = active
        self.left = False
        self.expired = False  # it left because its lease ended
        self.current: ThreadItem | None = None  # the item it runs now
        self.finished = False  # done with ``current``, on its way to idle
        self.thread = 0  # ident of the thread serving it, once it serves
        self.served = 0  # written only by the thread serving it

    def __repr__(self) -> str:
        return f"<LaneRunner linger={self.linger} served={self.served} left={self.left}>"


class DirectLane:
    """Items from other threads, served by runners on leased worker threads.

    Args:
        on_leftovers: Called (from a worker thread) with items the lane
            accepted but no runner will run, in order, and whether they were
            left because their runner's lease ended (the grinder fails
            those, as it fails calls queued on a revoked lease); others go
            back to the grinder's loop.
        on_ready: Called (from a worker thread) when a runner starts
            serving; the grinder hands it items that were refused while no
            runner was ready.
    """

    def __init__(
        self,
        on_leftovers: Callable[[list[ThreadItem], bool], None],
        on_ready: Callable[[], None] = lambda: None,
    ) -> None:
        self._on_leftovers = on_leftovers
        self._on_ready = on_ready
        self._lock = threading.Lock()
        self._items: queue.SimpleQueue[ThreadItem | None] = queue.SimpleQueue()
        self._runners: set[LaneRunner] = set()
        self._idle = 0  # runners waiting for an item
        self._waiting = 0  # items accepted and not yet taken by a runner
        self._open = False
        self._cancelling = False
        self._served_by_gone = 0
        self._offered_at = 0.0  # time.monotonic() of the last item accepted
        self.offered = 0
        #: Set by the grinder when thread items wait in its queue: the next
        #: runner to become idle asks for them (``on_ready``).
        self.wants_feed = False

    def __repr__(self) -> str:
        state = "open" if self._open else "closed"
        return (
            f"<DirectLane {state} runners={len(self._runners)} idle={self._idle} "
            f"waiting={self._waiting}>"
        )

    @property
    def runners(self) -> int:
        """Runners registered and not yet left (idle, busy or not started)."""
        return len(self._runners)

    @property
    def idle(self) -> int:
        """Runners waiting for an item now."""
        return self._idle

    @property
    def served(self) -> int:
        """Items run by runners so far."""
        with self._lock:
            return self._served_by_gone + sum(r.served for r in self._runners)

    @property
    def is_open(self) -> bool:
        """Whether the lane takes offers at all (it may still refuse one
        when no runner is idle)."""
        return self._open

    def offer(self, item: ThreadItem, *, new: bool = True) -> bool:
        """Hand ``item`` to an idle runner; ``False`` if none is free for it.

        Args:
            new: Count ``item`` in :attr:`offered` (``False`` for an item
                the grinder counted already).
        """
        with self._lock:
            if not self._open:
                return False
            if self._waiting >= self._idle and (
                self._waiting >= 2 * len(self._runners) or not self._ready_soon(item.origin)
            ):
                return False
            self._waiting += 1
            if new:
                self.offered += 1
            self._offered_at = time.monotonic()
            self._items.put(item)
        return True

    def _ready_soon(self, origin: int) -> int:
        """Runners that will take a waiting item soon: started ones that are
        idle or have just finished their item (never one still running an
        item, which may be slow).  None, if the item comes from a runner's
        thread (``origin``): submitted from a lane item and waited for
        there, it could wait for its own thread."""
        ready = 0
        for r in self._runners:
            if r.thread == origin:
                return 0
            if r.thread and (r.current is None or r.finished):
                ready += 1
        return ready

    def push(self, items: list[ThreadItem]) -> None:
        """Queue ``items`` for the runners just added (counted already;
        they take them as they start, whether or not they are idle yet)."""
        with self._lock:
            self._waiting += len(items)
            for item in items:
                self._items.put(item)

    def add_runner(self, linger: float, until: float, active: Callable[[], bool]) -> LaneRunner:
        """Register a runner (and open the lane); pass it to :meth:`serve`.

        Args:
            linger: Seconds the runner stays after the last item the lane
                accepted (at most ``STARVED_LINGERS`` times that after its
                own last item).
            until: ``time.monotonic()`` after which it takes no more items
                while the lane is open.
            active: Whether its lease still takes work (any thread).

        Raises:
            RuntimeError: If the lane was closed with ``cancel`` (it is done).
        """
        runner = LaneRunner(linger, until, active)
        with self._lock:
            if self._cancelling:
                raise RuntimeError("this lane was cancelled; the grinder starts a new one")
            self._runners.add(runner)
            self._open = True
        return runner

    def close(self, *, cancel: bool = False) -> None:
        """Refuse new offers; runners finish what the lane holds and leave.

        With ``cancel``, the items the lane holds are cancelled instead, so
        are the items runners are running now (their callables finish; the
        results are dropped), and the lane stays closed for good.
        """
        with self._lock:
            self._open = False
            doomed: list[ThreadItem] = []
            if cancel:
                self._cancelling = True
                doomed = self._take_locked(self._waiting)
                doomed += [r.current for r in self._runners if r.current is not None]
            for _ in range(self._idle):
                self._items.put(None)  # wakes an idle runner to see the lane closed
        _cancel(doomed)

    def serve(self, runner: LaneRunner) -> tuple[int, float]:
        """Run the lane's items on this (worker) thread until ``runner`` leaves.

        Returns:
            How many items it ran, and the seconds they took.
        """
        get = self._items.get
        lock = self._lock
        busy = 0.0
        runner.thread = threading.get_ident()
        self._on_ready()
        fed_at = time.monotonic()  # when this runner last took an item
        try:
            checks = 0
            while True:
                # Whether the lease is still live is checked every few items
                # and after a slow one (it costs a lookup); ``until``, which
                # ends long before a lease is revoked, is checked every time.
                checks -= 1
                if checks < 0:
                    if not runner.active():
                        runner.expired = True
                        return runner.served, busy
                    checks = ACTIVE_CHECK_EVERY
                with lock:
                    if self._open and time.monotonic() > runner.until:
                        return runner.served, busy
                    block = self._open
                    runner.current = None  # (kept until now: see _ready_soon)
                    if block:
                        self._idle += 1
                    feed, self.wants_feed = self.wants_feed and block, False
                if feed:
                    self._on_ready()  # the grinder has thread items queued for us
                try:
                    # Open: wait up to ``linger`` for an item.  Closed: take
                    # what the lane still holds, without waiting.
                    item = get(block, runner.linger)
                except queue.Empty:
                    if block:
                        with lock:
                            self._idle -= 1
                            if self._waiting > self._idle and not self._items.empty():
                                continue  # an item was promised as the wait ran out
                            now = time.monotonic()
                            if (
                                now - self._offered_at < runner.linger
                                and now - fed_at < STARVED_LINGERS * runner.linger
                            ):
                                continue  # others took the items, but items still come
                    return runner.served, busy
                with lock:
                    if block:
                        self._idle -= 1
                    if item is None:
                        if block:
                            continue  # woken: the lane closed
                        # A wake-up meant for a runner still waiting: leave
                        # it to that one, which drains what is left.
                        self._items.put(None)
                        return runner.served, busy
                    self._waiting -= 1
                    runner.current = item
                    runner.finished = False
                fed_at = time.monotonic()
                seconds = self._run(item)
                runner.finished = True
                if seconds is not None:
                    busy += seconds
                    runner.served += 1
                    if seconds > runner.linger:
                        checks = 0  # a slow item: the lease may have ended meanwhile
        finally:
            self.leave(runner)

    def _run(self, item: ThreadItem) -> float | None:
        """Run ``item`` unless its caller cancelled it; the seconds it took."""
        fn = item.fn
        if fn is None or item.cancelled():
            return None
        start = time.perf_counter()
        outcome = call_captured(fn, item.args, item.kwargs)
        seconds = time.perf_counter() - start
        item.fn, item.args, item.kwargs = None, (), {}
        item.state = ENDED
        if self._cancelling:
            item.cancel()
        else:
            item.resolve(outcome)
        return seconds

    def leave(self, runner: LaneRunner) -> None:
        """Unregister ``runner`` (idempotent).

        Items that the remaining idle runners cannot all take go to
        ``on_leftovers`` (cancelled instead after a cancelling close).  Also
        called for a runner that never ran.
        """
        with self._lock:
            if runner.left:
                return
            runner.left = True
            self._served_by_gone += runner.served
            self._runners.discard(runner)
            remaining = len(self._runners)
            if remaining:
                leftovers = self._take_locked(self._waiting - self._idle)
            else:  # the last one out empties the lane, wake-ups included
                self._open = False
                leftovers = self._take_locked(None)
                self._waiting = self._idle = 0
            cancelling = self._cancelling
        if cancelling:
            _cancel(leftovers)
        elif leftovers:
            # Items fail with their runner's lease only if no runner is left
            # to take them; otherwise they go back to the loop.
            self._on_leftovers(leftovers, runner.expired and not remaining)

    def _take_locked(self, count: int | None) -> list[ThreadItem]:
        """Take up to ``count`` waiting items (fewer if runners got there
        first); ``None`` empties the queue, wake-ups included."""
        items: list[ThreadItem] = []
        while count is None or len(items) < count:
            try:
                item = self._items.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                items.append(item)
        self._waiting -= len(items)
        return items

    def stats(self) -> dict[str, Any]:
        """Runners, items waiting for one, and items served so far."""
        return {
            "lane_runners": len(self._runners),
            "lane_waiting": self._waiting,
            "items_direct": self.served,
        }


def _cancel(items: list[ThreadItem]) -> None:
    for item in items:
        item.state = ENDED
        item.cancel()
