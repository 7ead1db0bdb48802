"""Where items come in and how they are counted: the grinder's item sink.

An item from the loop goes straight to the queue. An item from a plain
thread goes to the thread hand-off if it takes it, else through the inbox
(a mailbox) to the loop, which offers it to the hand-off once more and
otherwise queues it. Items the hand-off gives back take the same way in.

Items report here how they ended (:class:`~.items.ItemSink`), from
whichever thread decided their future's final state, so the counts always
match the futures; a cancelled item is dropped by its owner (``items.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from .._util.loops import LoopBinding
from .._util.mailbox import Mailbox
from ..exceptions import LeasePoolNotStartedError
from .counts import ItemCounts
from .handoff import WAIT_LIMIT_SECONDS, Handoff
from .items import ENDED, INBOX, RUNNING, Item, ThreadItem, forget_call
from .overtime import Overtime
from .queue import ItemQueue

__all__ = ["Intake"]

class Intake:
    """The way in for items, and their counts.

    Args:
        binding: The grinder's loop binding.
        queue: The grinder's queue.
        wake: Wakes the batcher (loop thread).
        refusal: Why items cannot be taken now, or ``None`` while they can
            (loop thread).
        cancelling: Whether a cancelling stop is under way (loop thread).
        fault: Reports a failure of its own code (any thread).
        timing: Record each item's queue, run and latency times.
    """

    def __init__(
        self,
        binding: LoopBinding,
        queue: ItemQueue,
        wake: Callable[[], None],
        refusal: Callable[[], BaseException | None],
        cancelling: Callable[[], bool],
        fault: Callable[[str, BaseException], None],
        timing: bool = True,
    ) -> None:
        self._binding = binding
        self._queue = queue
        self._wake = wake
        self._refusal = refusal
        self._cancelling = cancelling
        self._fault = fault
        # Who writes what: ``handoff`` (the reference), ``running`` and
        # ``_earlier_handoffs`` are written only by the loop (start, the
        # batcher, settling); other threads only read ``handoff`` once per
        # offer (an earlier run's hand-off is closed and refuses) and reach
        # the rest through the mailbox or ``call_soon_threadsafe``.
        # ``tally`` is fed from any thread (an item's end is counted by
        # whichever thread decided its future), each on its own shard.
        self.handoff = self.new_handoff()
        self.running: set[Item] = set()  # the current run's items taken by batches
        self._inbox: Mailbox[ThreadItem] = Mailbox(self._take_inbox)
        #: The item counts, timings and last failures (:mod:`.counts`).
        self.tally = ItemCounts(timing)
        #: Items copy their submitter's context (set per run from the
        #: backend: only calls run on this process's threads can use it).
        self.carries_context = False
        self._earlier_handoffs = {"lane_accepted": 0, "items_direct": 0}  # of past runs
        #: Time limits the grinder keeps itself (threads, backends that
        #: cannot stop a call).
        self.overtime = Overtime(binding)
        #: Stops the call of a running item its caller cancelled, where the
        #: backend can (set by each run's batches; loop thread).
        self.stop_call: Callable[[Item], None] = no_call_to_stop

    def new_handoff(self) -> Handoff:
        """A thread hand-off whose items come back here."""
        return Handoff(self.given_back, self._watch_from_thread)

    def renew_handoff(self) -> None:
        """A new run gets a new hand-off (runners of an earlier run cannot
        serve it); the counts of the old one are kept."""
        old = self.handoff.stats()
        for key in self._earlier_handoffs:
            self._earlier_handoffs[key] += old[key]
        self.handoff = self.new_handoff()
        self.overtime.reset()

    # ------------------------------------------------------------- coming in

    def accept(self, item: Item) -> None:
        """Queue ``item`` (loop thread); a solo item is batched at once,
        whatever the threshold says."""
        if item.solo:
            self._queue.append_solo(item)
            self._wake()
        elif self._queue.append(item):
            self._wake()

    def from_thread(self, item: ThreadItem, loop: asyncio.AbstractEventLoop) -> None:
        """Take ``item`` from a plain thread: to a runner, or to the loop
        (a timed item always: it travels alone, under its own limits).

        Raises:
            RuntimeError: If the loop is closed.
        """
        if item.solo or not self.handoff.offer(item):
            self._inbox.post(loop, item)

    def drain_inbox(self) -> None:
        self._take_inbox(self._inbox.take())

    def _take_inbox(self, items: list[ThreadItem], counted: bool = False) -> None:
        """On the loop: ``INBOX`` items go to the hand-off or the queue
        (``counted``: given back, counted as submitted already)."""
        if not counted:
            self.count("submitted", len(items))
        try:
            refusal, cancelling = self._refusal(), self._cancelling()
            for item in items:
                if item.cancelled():
                    item.state = ENDED  # its cancel() counted it
                elif cancelling:
                    cancel_item(item)
                elif refusal is not None:
                    item.state = ENDED
                    item.resolve((False, refusal))
                elif item.solo or not self.handoff.offer(item, new=False):
                    self.accept(item)
        except Exception as exc:
            self._stranded(items, "taking in items from threads", exc)

    def _stranded(self, items: list[ThreadItem], where: str, exc: BaseException) -> None:
        """A bug stopped ``items`` on their way in: those still in nobody's
        hands (``INBOX``) fail with its error, and the fault is reported."""
        for item in items:
            if item.state == INBOX:
                item.state = ENDED
                item.resolve((False, exc))
        self._fault(where, exc)

    def given_back(self, items: list[ThreadItem]) -> None:
        """Items the hand-off accepted but no runner will run (any thread):
        back to the loop, as if just submitted."""
        for item in items:
            item.state = INBOX
        loop = self._binding.loop
        try:
            if loop is None:
                raise RuntimeError("the grinder has no loop")
            if self._binding.on_loop_thread():
                self._take_inbox(items, counted=True)
            else:
                loop.call_soon_threadsafe(self._take_inbox, items, True)
        except RuntimeError:
            for item in items:
                item.state = ENDED
                item.resolve((False, LeasePoolNotStartedError("the WorkGrinder stopped")))

    def _watch_from_thread(self) -> None:
        """An item waits for a busy runner (any thread): look again on the
        loop once it may have waited too long."""
        loop = self._binding.loop
        try:
            if loop is not None:
                loop.call_soon_threadsafe(self._watch, loop)
        except RuntimeError:
            pass  # loop closed: the grinder stopped, and close() emptied the hand-off

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.call_later(WAIT_LIMIT_SECONDS, self._reclaim, loop)

    def _reclaim(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the loop: items that waited too long for a busy runner take
        the batch path, at once (it can lease another pool)."""
        items, still = self.handoff.reclaim(WAIT_LIMIT_SECONDS)
        try:
            if items:
                if self._refusal() is None and not self._cancelling():
                    for item in items:
                        self._queue.append(item)
                    self._queue.hurry()
                    self._wake()
                else:
                    self._take_inbox(items, counted=True)
            if still:
                self._watch(loop)
        except Exception as exc:
            self._stranded(items, "taking back items that waited", exc)

    # ------------------------------------------------------ the items' sink

    def item_ended(self, item: Item, how: str, error: BaseException | None = None) -> None:
        """An item's future reached its final state (any thread)."""
        self.tally.ended(item, how, error)

    def item_started(self, item: Item, at: float) -> None:
        """A timed item started on a worker thread (that thread): arm its limit."""
        self.overtime.started(item, at)

    def item_cancelled(self, item: Item) -> None:
        """The caller cancelled ``item`` (its thread): its owner drops it."""
        if type(item) is ThreadItem:
            self.handoff.withdraw(item)
        loop = self._binding.loop
        if loop is None:
            return
        if self._binding.on_loop_thread():
            self._drop(item)
            return
        try:
            loop.call_soon_threadsafe(self._drop, item)
        except RuntimeError:
            pass  # loop closed: the grinder is gone, nothing to remove

    def _drop(self, item: Item) -> None:
        """On the loop: forget a cancelled item it owns (``INBOX`` items are
        dropped as the inbox is drained, ``HANDED`` ones by the hand-off)."""
        if not self._queue.drop(item) and item.state == RUNNING and item in self.running:
            item.state = ENDED
            self.running.discard(item)
            self.stop_call(item)

    # ---------------------------------------------------------------- counts

    def count(self, what: str, n: int = 1) -> None:
        self.tally.count(what, n)

    def counts(self) -> dict[str, int]:
        return self.tally.counts()

    def stats(self) -> dict[str, Any]:
        """The grinder's item and hand-off counts, across runs, for ``stats()``."""
        counts = self.counts()
        handoff = self.handoff.stats()
        for key, earlier in self._earlier_handoffs.items():
            handoff[key] += earlier
        return {
            "items_submitted": counts["submitted"] + handoff.pop("lane_accepted"),
            "items_completed": counts["completed"],
            "items_failed": counts["failed"],
            "items_cancelled": counts["cancelled"],
            "batches_run": counts["batches"],
            "leases_acquired": counts["leases"],
            **self.overtime.stats(),
            **handoff,
        }


def cancel_item(item: Item) -> None:
    """End ``item`` by cancelling it (it may have just been resolved)."""
    if item.state != RUNNING:  # a running in-process chunk may still read the call
        forget_call(item)
    item.state = ENDED
    item.cancel()  # counts itself; if it already ended, it was counted then


def no_call_to_stop(item: Item) -> None:
    """:attr:`Intake.stop_call` between runs: no call is out."""
