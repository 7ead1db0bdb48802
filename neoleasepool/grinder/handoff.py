"""The thread hand-off: items from plain threads, run by runners on leased workers.

On the grinder's batch path an item submitted from a plain thread crosses
two threads before it runs (caller to loop, loop to a leased worker), and
for tiny items those hops are most of the cost. While the grinder holds an
in-process lease, a :class:`Handoff` takes the loop out of that path: a
batch that holds thread items also queues one *runner* per worker of its
lease, and each runner serves the hand-off from its worker thread until it
leaves.

The shape is a monitor, the one ``queue.Queue`` and ``ThreadPoolExecutor``
are built on: one lock guards a deque of waiting items (``_backlog``) and
everything else, and a condition on that lock wakes waiting runners.

* :meth:`Handoff.offer` appends the item under the lock and notifies one
  waiting runner. It refuses the item (the caller then takes the batch path,
  which never waits on the hand-off) when no runner serves, when the deque
  already holds ``BACKLOG_PER_RUNNER`` items per serving runner, or when the
  item comes from a runner's own thread and no waiting runner is free for
  it (that runner may be the one it would wait for).
* A runner takes the next item from the deque under the lock, or waits on
  the condition for up to ``linger`` seconds. It leaves only while it holds
  the lock: on a timeout only if the deque is still empty, and when it must
  leave (its lease ended, the hand-off closed) the last runner out takes
  whatever the deque still holds and gives it back.

An item may wait for a busy runner, but not for long: the runner may be
running something slow, or something that waits for this very item, while
other pools are free. The first item that waits asks the grinder to watch
(``on_wait``), and the grinder takes back (:meth:`Handoff.reclaim`, under
the lock) whatever has waited ``WAIT_LIMIT_SECONDS`` for a batch at once,
which can lease another pool.

Who writes what: every field of the hand-off, and each runner's ``item``,
is written under ``_lock``; a runner's counts are written only by its own
thread. Items in the deque are in state ``HANDED`` and belong to the
hand-off (``items.py``); the runner that pops one moves it to ``RUNNING``
and ``ENDED``.

Why nothing is lost or run twice: an accepted item sits in the deque until
it is removed under the lock, exactly once: popped by one runner, withdrawn
by its canceller, reclaimed by the grinder, or taken by ``close`` or the
last runner out. While the
deque holds an item, some runner serves: the only runner that may leave
with items queued is one that is not the last, and the last one takes them.

When a runner gives its lease back: it leaves, and its call on the lease
returns, when it has waited ``linger`` seconds for an item; when, after an
item, its lease's reuse window has ended or the lease is no longer live;
or when the hand-off is closed (the grinder wants leases back for queued
work, or stops). ``close`` starts a new *generation*: runners of older ones
finish the item they run and leave.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .._util import current
from .calls import call_captured
from .items import ENDED, HANDED, INBOX, RUNNING, ThreadItem, forget_call

__all__ = ["BACKLOG_PER_RUNNER", "LINGER_SECONDS", "WAIT_LIMIT_SECONDS", "Handoff", "Runner"]

#: How long an idle runner waits for an item before it leaves, in seconds:
#: several GIL switch intervals (5 ms), so that a busy hand-off keeps its
#: runners, yet short enough to give the lease back soon after callers stop.
LINGER_SECONDS = 0.02

#: Items that may wait in the deque per serving runner: enough to keep
#: every runner fed while callers turn around, few enough that a burst
#: takes the batch path (which recruits more leases).
BACKLOG_PER_RUNNER = 2

#: How long an item may wait in the deque while every runner is busy before
#: the grinder takes it back for a batch, in seconds: a runner can be busy
#: with a slow item (or one that waits for this one) while other pools idle.
WAIT_LIMIT_SECONDS = 0.05

#: A runner's generation once it has left (or was discarded unstarted).
GONE = -1


class Runner:
    """One runner: the item it runs, its counts, and when it must leave.

    Args:
        generation: The hand-off's generation it serves.
        until: ``time.monotonic()`` after which it takes no more items.
        active: Whether its lease still takes work (any thread).
        linger: Seconds it waits idle before it leaves.
    """

    __slots__ = ("active", "generation", "item", "linger", "seconds", "served", "until")

    def __init__(
        self, generation: int, until: float, active: Callable[[], bool], linger: float
    ) -> None:
        self.generation = generation
        self.until = until
        self.active = active
        self.linger = linger
        self.item: ThreadItem | None = None  # the item it runs (set under the lock)
        self.served = 0  # written by its own thread only
        self.seconds = 0.0

    def __repr__(self) -> str:
        return f"<Runner generation={self.generation} served={self.served}>"


class Handoff:
    """Items from plain threads, served by runners on leased worker threads.

    Args:
        give_back: Called (from the closing or leaving thread, outside the
            lock) with items that were accepted but that no runner will run,
            in order; the grinder queues them for a batch.
    """

    def __init__(
        self,
        give_back: Callable[[list[ThreadItem]], None],
        on_wait: Callable[[], None] = lambda: None,
    ) -> None:
        self._give_back = give_back
        self._on_wait = on_wait
        self._watched = False  # on_wait was called and reclaim() has not yet cleared it
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)  # notified when an item is queued
        self._idle: set[Runner] = set()  # this generation's runners waiting on _ready
        self._backlog: deque[ThreadItem] = deque()
        self._serving: set[Runner] = set()  # started, of this generation
        self._live: set[Runner] = set()  # started and not gone, any generation
        self._threads: set[int] = set()  # threads running a runner, any generation
        self._queued = 0  # runners added and not yet started or gone
        self._generation = 0
        self._accepted = 0
        self._served_by_gone = 0

    def __repr__(self) -> str:
        return (
            f"<Handoff generation={self._generation} serving={len(self._serving)} "
            f"idle={len(self._idle)} backlog={len(self._backlog)}>"
        )

    # ---------------------------------------------------------------- offers

    def offer(self, item: ThreadItem, *, new: bool = True, wait: bool = True) -> bool:
        """Queue ``item`` for the runners if one will take it soon; any thread.

        Args:
            new: Count it as submitted (``False`` for an item counted already).
            wait: Whether it may wait for a busy runner (``False``: only if a
                waiting runner is free for it).

        Returns:
            Whether the hand-off took it; if not, the caller keeps it.
        """
        with self._lock:  # (the lock of _ready)
            waiting = len(self._backlog)
            if not self._serving or (
                len(self._idle) <= waiting
                and (
                    not wait
                    or item.origin in self._threads
                    or waiting >= BACKLOG_PER_RUNNER * len(self._serving)
                )
            ):
                return False
            self._backlog.append(item)
            item.state = HANDED
            item.handed_at = time.monotonic()
            self._accepted += new
            if self._idle:
                self._ready.notify()  # (close() woke every older runner)
            watch = len(self._idle) <= waiting and not self._watched
            self._watched = self._watched or watch
        if watch:
            self._on_wait()  # it waits for a busy runner: ask to be watched
        return True

    def reclaim(self, older_than: float) -> tuple[list[ThreadItem], bool]:
        """Take back the items that have waited ``older_than`` seconds.

        Returns:
            The items (state ``INBOX``, in order), and whether items still
            wait (then the caller should look again later).
        """
        with self._lock:
            limit = time.monotonic() - older_than
            taken: list[ThreadItem] = []
            while self._backlog and self._backlog[0].handed_at <= limit:
                item = self._backlog.popleft()
                item.state = INBOX
                taken.append(item)
            self._watched = bool(self._backlog)
            return taken, self._watched

    def withdraw(self, item: ThreadItem) -> None:
        """Drop a cancelled ``item`` from the backlog, if it waits there."""
        with self._lock:
            if item.state == HANDED and item in self._backlog:
                self._backlog.remove(item)
                item.state = ENDED

    # --------------------------------------------------------------- runners

    def add_runner(self, until: float, active: Callable[[], bool], linger: float) -> Runner:
        """A runner for the current generation; pass it to :meth:`serve` on a
        worker thread, or to :meth:`discard` if it never gets there."""
        with self._lock:
            self._queued += 1
            return Runner(self._generation, until, active, linger)

    def discard(self, runner: Runner) -> None:
        """``runner`` will never serve (its call was refused or cancelled)."""
        with self._lock:
            if runner.generation != GONE:
                self._queued -= 1
                runner.generation = GONE

    def serve(self, runner: Runner) -> tuple[int, float]:
        """Run queued items on this worker thread until ``runner`` leaves.

        Returns:
            How many items it ran, and the seconds they took.
        """
        with self._lock:
            if runner.generation == GONE:
                return 0, 0.0  # discarded meanwhile
            self._queued -= 1
            if runner.generation != self._generation:
                runner.generation = GONE
                return 0, 0.0  # closed before it started
            self._serving.add(runner)
            self._live.add(runner)
            self._threads.add(threading.get_ident())
        item: ThreadItem | None = None
        try:
            while True:
                if item is not None:
                    self._run(runner, item)
                item = self._next(runner)
                if item is None:
                    return runner.served, runner.seconds
        except BaseException as exc:
            # A bug, or a stand-in lease whose ``active`` raised: leave, so
            # that no item is queued for a runner that is gone, and end the
            # item in hand with the error (nobody else will).
            with self._lock:
                item, runner.item = runner.item, None
                leftovers = [] if runner.generation == GONE else self._leave_locked(runner)
            if item is not None and item.state != ENDED:
                item.state = ENDED
                item.resolve((False, exc))
            self._hand_back(leftovers)
            raise

    def _next(self, runner: Runner) -> ThreadItem | None:
        """The runner's next item, waiting for one up to ``linger`` seconds;
        ``None`` once it has left."""
        expired = time.monotonic() > runner.until or not runner.active()
        with self._lock:  # (the lock of _ready)
            runner.item = None
            while not expired and runner.generation == self._generation:
                if self._backlog:
                    runner.item = self._backlog.popleft()
                    return runner.item
                self._idle.add(runner)
                woken = self._ready.wait(runner.linger)
                self._idle.discard(runner)
                # It leaves on a timeout only if, under the lock, nothing waits.
                expired = not woken and not self._backlog
            leftovers = self._leave_locked(runner)
        self._hand_back(leftovers)
        return None

    def _leave_locked(self, runner: Runner) -> list[ThreadItem]:
        """Unregister ``runner`` (on its own thread); return the backlog if no
        runner is left to serve it."""
        self._serving.discard(runner)
        self._live.discard(runner)
        self._threads.discard(threading.get_ident())
        self._served_by_gone += runner.served
        runner.generation = GONE
        if self._serving or not self._backlog:
            return []
        leftovers = list(self._backlog)
        self._backlog.clear()
        return leftovers

    def _hand_back(self, items: list[ThreadItem]) -> None:
        if items:
            self._give_back(items)

    @staticmethod
    def _run(runner: Runner, item: ThreadItem) -> None:
        fn = item.fn
        if fn is None or item.cancelled():
            item.state = ENDED  # its cancel() counted it
            return
        item.state = RUNNING
        slot = current.slot()
        slot.source = item  # its current_item()
        slot.started = item.started_at = time.monotonic()
        start = time.perf_counter()
        outcome = call_captured(fn, item.args, item.kwargs, item.context)
        runner.seconds += time.perf_counter() - start
        slot.source = slot.started = None
        runner.served += 1
        item.state = ENDED
        item.resolve(outcome)  # (its failures name its function)
        forget_call(item)

    # --------------------------------------------------------------- closing

    def close(self, *, cancel: bool = False) -> None:
        """Start a new generation: every runner leaves once its item is done.

        Items waiting in the backlog are given back; with ``cancel`` they
        are cancelled instead, and so are the items runners run now (their
        callables finish; the results are dropped).
        """
        with self._lock:
            self._generation += 1
            waiting = list(self._backlog)
            self._backlog.clear()
            running = [r.item for r in self._live if r.item is not None]
            self._serving.clear()
            self._idle.clear()  # no longer free for this generation's items
            self._ready.notify_all()  # waiting runners see the new generation and leave
        if cancel:
            for item in waiting:
                item.state = ENDED  # still the hand-off's: nobody else writes it
                item.cancel()
            for item in running:
                item.cancel()  # its runner ends it
        elif waiting:
            self._give_back(waiting)

    # ----------------------------------------------------------- diagnostics

    def stats(self) -> dict[str, Any]:
        """Runners (queued or serving), idle ones, the backlog, and counts."""
        with self._lock:
            return {
                "lane_runners": self._queued + len(self._live),
                "lane_idle": len(self._idle),
                "lane_waiting": len(self._backlog),
                "lane_accepted": self._accepted,
                "items_direct": self._served_by_gone + sum(r.served for r in self._live),
            }
