"""The thread hand-off: items from plain threads, run by runners on leased workers.

On the grinder's batch path an item submitted from a plain thread crosses
two threads before it runs (caller to loop, loop to a leased worker), and
for tiny items those hops are most of the cost. While the grinder holds an
in-process lease, a :class:`Handoff` takes the loop out of that path: a
batch that holds thread items also queues one *runner* per worker of its
lease, and each runner serves the hand-off from its worker thread until it
leaves.

The shape is trio's thread cache plus a short ``ThreadPoolExecutor`` queue,
all under one lock:

* ``_idle`` is a dict of runners waiting for an item, each on a lock of its
  own. :meth:`Handoff.offer` pops one (``popitem``), puts the item in its
  ``item`` slot and releases that runner's lock. An idle runner whose wait
  runs out leaves only if it can still remove itself from ``_idle`` under
  the lock; if it cannot, someone has just handed it an item, and it takes
  it. So an item is never handed to a runner that is leaving.
* ``_backlog`` holds items that arrived while every serving runner was busy,
  at most ``BACKLOG_PER_RUNNER`` per serving runner. A runner that finishes
  an item takes the next one from the backlog before it goes idle, so
  *the backlog is empty whenever a runner is idle*. An item from a runner's
  own thread never waits in the backlog (that runner may be the one it would
  wait for): it is refused unless a runner is idle.
* A refused item takes the batch path, which never waits on the hand-off.

Who writes what: every field of the hand-off, and a runner's ``item`` slot,
is written under ``_lock``; a runner's counts are written only by the
runner's own thread. Items the hand-off holds are in state ``HANDED`` and
belong to it (``items.py``): a runner moves its item to ``RUNNING`` and
``ENDED``; items nobody will run leave as *leftovers* through
``give_back`` (to the loop) or are cancelled by a cancelling close.

Why nothing is lost or run twice: an accepted item is in exactly one place,
an idle runner's slot or the backlog, and leaves it under the lock, taken
by exactly one runner or by ``_leave_locked``/``close``. The last runner
out (or ``close``) takes whatever the backlog still holds, so the backlog
is never left without a runner to serve it.

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

from .calls import call_captured
from .items import ENDED, HANDED, RUNNING, ThreadItem, forget_call

__all__ = ["BACKLOG_PER_RUNNER", "LINGER_SECONDS", "Handoff", "Runner"]

#: How long an idle runner waits for an item before it leaves, in seconds:
#: several GIL switch intervals (5 ms), so that a busy hand-off keeps its
#: runners, yet short enough to give the lease back soon after callers stop.
LINGER_SECONDS = 0.02

#: Items that may wait in the backlog per serving runner: enough to keep
#: every runner fed while callers turn around, few enough that a burst
#: takes the batch path (which recruits more leases).
BACKLOG_PER_RUNNER = 2

#: A runner's generation once it has left (or was discarded unstarted).
GONE = -1


class Runner:
    """One runner: where it is handed items, and when it must leave.

    Args:
        generation: The hand-off's generation it serves.
        until: ``time.monotonic()`` after which it takes no more items.
        active: Whether its lease still takes work (any thread).
        linger: Seconds it waits idle before it leaves.
    """

    __slots__ = ("active", "generation", "item", "linger", "seconds", "served", "until", "wake")

    def __init__(
        self, generation: int, until: float, active: Callable[[], bool], linger: float
    ) -> None:
        self.generation = generation
        self.until = until
        self.active = active
        self.linger = linger
        self.item: ThreadItem | None = None  # handed to it (under the lock)
        self.wake = threading.Lock()
        self.wake.acquire()  # released by whoever hands it an item or closes
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

    def __init__(self, give_back: Callable[[list[ThreadItem]], None]) -> None:
        self._give_back = give_back
        self._lock = threading.Lock()
        self._idle: dict[Runner, None] = {}
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

    def offer(self, item: ThreadItem, *, new: bool = True) -> bool:
        """Give ``item`` to an idle runner, or to the backlog; any thread.

        Args:
            new: Count it as submitted (``False`` for an item counted already).

        Returns:
            Whether the hand-off took it; if not, the caller keeps it.
        """
        with self._lock:
            if self._idle:
                runner, _ = self._idle.popitem()
                runner.item = item
            elif len(self._backlog) < BACKLOG_PER_RUNNER * len(self._serving) and (
                item.origin not in self._threads
            ):
                runner = None
                self._backlog.append(item)
            else:
                return False
            item.state = HANDED
            self._accepted += new
        if runner is not None:
            runner.wake.release()
        return True

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
        """Run handed items on this worker thread until ``runner`` leaves.

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
        while True:
            if item is not None:
                self._run(runner, item)
            item = self._next(runner)
            if item is None:
                return runner.served, runner.seconds

    def _next(self, runner: Runner) -> ThreadItem | None:
        """The runner's next item, from the backlog or handed to it while it
        waits idle; ``None`` once it has left."""
        expired = time.monotonic() > runner.until or not runner.active()
        with self._lock:
            runner.item = None
            if expired or runner.generation != self._generation:
                leftovers = self._leave_locked(runner)
            elif self._backlog:
                runner.item = self._backlog.popleft()
                return runner.item
            else:
                self._idle[runner] = None
                leftovers = None
        if leftovers is not None:
            self._hand_back(leftovers)
            return None
        return self._wait_idle(runner)

    def _wait_idle(self, runner: Runner) -> ThreadItem | None:
        """Wait for an item for up to ``linger`` seconds, registered as idle."""
        if not runner.wake.acquire(timeout=runner.linger):
            with self._lock:
                leaving = runner in self._idle
                if leaving:  # nobody handed it anything, nor can now: leave
                    del self._idle[runner]
                    leftovers = self._leave_locked(runner)
            if leaving:
                self._hand_back(leftovers)
                return None
            # Popped from _idle just as the wait ran out: the hander releases
            # ``wake`` right after it lets go of the lock.
            runner.wake.acquire()
        if runner.item is None:  # woken by close()
            with self._lock:
                leftovers = self._leave_locked(runner)
            self._hand_back(leftovers)
        return runner.item

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
        start = time.perf_counter()
        outcome = call_captured(fn, item.args, item.kwargs)
        runner.seconds += time.perf_counter() - start
        runner.served += 1
        forget_call(item)
        item.state = ENDED
        item.resolve(outcome)

    # --------------------------------------------------------------- closing

    def close(self, *, cancel: bool = False) -> None:
        """Start a new generation: every runner leaves once its item is done.

        Items waiting in the backlog are given back; with ``cancel`` they
        are cancelled instead, and so are the items runners run now (their
        callables finish; the results are dropped).
        """
        with self._lock:
            self._generation += 1
            idle = list(self._idle)
            self._idle.clear()
            for runner in idle:
                runner.item = None
            waiting = list(self._backlog)
            self._backlog.clear()
            running = [r.item for r in self._live if r.item is not None]
            self._serving.clear()
        for runner in idle:
            runner.wake.release()
        if cancel:
            for item in waiting:
                item.state = ENDED  # still the hand-off's: nobody else writes it
                item.cancel()
            for item in running:
                item.cancel()  # its runner ends it
        elif waiting:
            self._give_back(waiting)

    # ----------------------------------------------------------- diagnostics

    @property
    def open(self) -> bool:
        """Whether a runner of the current generation serves now."""
        return bool(self._serving)

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
