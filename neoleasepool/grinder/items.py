"""Work items and their state machine.

An item *is* its caller's future: :class:`AsyncItem` (an ``asyncio.Future``,
for ``enqueue``/``submit``) or :class:`ThreadItem` (a
``concurrent.futures.Future``, for ``submit_from_thread``), carrying the call
to make. One object per item and no per-item callback.

States (``item.state``) and who may move an item out of each one; the table
is :data:`TRANSITIONS`, and ``doc/architecture.md`` draws it:

=========  =====================================  =============================
state      owner (the only writer of ``state``)   next states
=========  =====================================  =============================
INBOX      its submitting thread, then the loop   QUEUED, HANDED, ENDED
QUEUED     the grinder's loop                     RUNNING, HANDED, ENDED
HANDED     the thread hand-off, under its lock    RUNNING, INBOX, ENDED
RUNNING    whoever runs or settles it             QUEUED (refused unrun), ENDED
ENDED      nobody                                 (final)
=========  =====================================  =============================

Ownership moves only through something that synchronises threads: the
loop's mailbox, the hand-off's lock, ``executor.submit`` and a chunk's
done-callback. So each transition is made by one thread at a time and needs
no lock of its own.

A caller's ``cancel()`` never writes ``state``: it ends the *future* (for
a thread item, after claiming its end under ``_CLAIM``, the one step that
decides between a cancel and a result) and asks the owner to drop the item
(:meth:`ItemSink.item_cancelled`). Whoever next holds the item sees the
future done and moves the item to ``ENDED`` without running it. An item's
end is counted exactly once, by the call that decided its future's final
state: the first successful ``cancel()``, or ``resolve()``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from .._util.current import ItemToken, chunk_started
from .._util.limits import Limits, function_name

__all__ = [
    "ENDED",
    "HANDED",
    "INBOX",
    "QUEUED",
    "RUNNING",
    "TRANSITIONS",
    "AsyncItem",
    "Item",
    "ItemSink",
    "MapChunkItem",
    "Outcome",
    "ThreadItem",
    "TimedAsyncItem",
    "TimedThreadItem",
    "forget_call",
]

#: ``(True, result)`` or ``(False, exception)`` for one item.
Outcome = tuple[bool, Any]

INBOX, QUEUED, HANDED, RUNNING, ENDED = "inbox", "queued", "handed", "running", "ended"

#: Which state may follow which (see the module docstring for the owners).
TRANSITIONS: dict[str, frozenset[str]] = {
    INBOX: frozenset({QUEUED, HANDED, ENDED}),
    QUEUED: frozenset({RUNNING, HANDED, ENDED}),
    HANDED: frozenset({RUNNING, INBOX, ENDED}),
    RUNNING: frozenset({QUEUED, ENDED}),
    ENDED: frozenset(),
}

# Makes "who ends this thread item?" one atomic step: the first cancel()
# or resolve() claims the item's end (``ending``) under it, counts it, and
# only then ends the future, which wakes its waiters. So a caller holding
# a result always finds it counted in stats(), and an end is counted once
# (two threads can race here for real without the GIL). Held only for the
# test-and-set, never while a callback runs.
_CLAIM = threading.Lock()


class ItemSink(Protocol):
    """What an item tells its grinder."""

    def item_cancelled(self, item: Item) -> None:
        """The caller cancelled ``item`` (called once, from the caller's thread)."""

    def item_ended(self, item: Item, how: str, error: BaseException | None = None) -> None:
        """``item``'s future ended: ``"completed"``, ``"failed"`` (with
        ``error``) or ``"cancelled"`` (called once, by the thread that ended
        it, before its caller can see the end)."""

    def item_started(self, item: Item, at: float) -> None:
        """A timed item started running at ``at`` (monotonic), on a worker thread."""

    #: Items run in their submitter's ``contextvars`` context (in-process
    #: backends: the call runs on a thread of this process).
    carries_context: bool


class _ItemFields:
    """What the grinder keeps on an item, whichever kind of future it is.

    The attributes are declared here and set by :func:`_init_fields`; the
    slots are each item class's own, since asyncio's C ``Future`` cannot
    share its instance layout with another base that has slots.
    """

    __slots__ = ()

    sink: ItemSink
    fn: Callable[..., Any] | None
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    enqueued_at: float
    #: A copy of its submitter's ``contextvars`` context, to run its call
    #: in (in-process backends only), else ``None``.
    context: contextvars.Context | None
    #: When it left the grinder's queue (taken by a batch or a lane
    #: runner), in ``time.monotonic()`` seconds; 0.0 until then.
    started_at: float
    state: str
    outcome: Outcome | None
    requeued: bool  # put back once after a broken pool refused it unrun
    #: Travels alone in its own executor call (map chunks, timed items).
    solo = False
    #: Its queue, run and latency seconds go to the grinder's timings (not
    #: a map chunk's, which are a whole chunk's).
    timed = True
    #: Its time limits; only the timed item classes have any.
    limits: Limits | None = None

    def name(self) -> str:
        """The name of the function it runs, for messages (never its arguments)."""
        return function_name(self.fn)

    def item_token(self) -> ItemToken:
        """What the running function sees of its item (``current_item()``):
        ``cancelled`` once its future is done (cancelled, or failed by its
        time limit)."""
        timeout, soft = self.limits or (None, None)
        done: Callable[[], bool] = self.done  # type: ignore[attr-defined]
        return ItemToken(self.name(), chunk_started(), timeout, soft, done)


def _init_fields(
    item: Item,
    sink: ItemSink,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    state: str,
) -> None:
    item.sink = sink
    item.fn = fn
    item.args = args
    item.kwargs = kwargs
    item.enqueued_at = time.monotonic()
    item.started_at = 0.0
    item.context = contextvars.copy_context() if sink.carries_context else None
    item.state = state
    item.outcome = None
    item.requeued = False


class AsyncItem(asyncio.Future[Any], _ItemFields):
    """An item submitted on the grinder's loop; awaiting it gives the result.

    Everything that touches it runs on that loop, except an in-process
    chunk that reads its call and stores its outcome on a worker thread.
    """

    __slots__ = (
        "args", "context", "enqueued_at", "fn", "kwargs", "outcome", "requeued", "sink",
        "started_at", "state",
    )

    def __init__(
        self,
        sink: ItemSink,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        super().__init__(loop=loop)
        _init_fields(self, sink, fn, args, kwargs, QUEUED)

    def cancel(self, msg: Any | None = None) -> bool:
        if not super().cancel(msg):
            return False  # done already: counted then
        self.sink.item_ended(self, "cancelled")
        self.sink.item_cancelled(self)
        return True

    def resolve(self, outcome: Outcome) -> bool:
        """Set the outcome (on the loop); whether it did (not if the item
        had ended already).

        An asyncio future refuses ``StopIteration`` (``TypeError``), so a
        callable's ``StopIteration`` arrives as the cause of a
        ``RuntimeError``, as in a coroutine (PEP 479).
        """
        if self.done():
            return False
        ok, value = outcome
        if ok:
            self.set_result(value)
        elif isinstance(value, StopIteration):
            error = RuntimeError(f"the callable raised StopIteration: {value!r}")
            error.__cause__ = value
            self.set_exception(error)
        else:
            self.set_exception(value)
        self.sink.item_ended(self, "completed" if ok else "failed", None if ok else value)
        return True


class TimedAsyncItem(AsyncItem):
    """An :class:`AsyncItem` with time limits: it travels alone in its own
    executor call, so that stopping it (a process worker killed) touches
    no other item."""

    __slots__ = ("limits",)
    solo = True

    def __init__(
        self,
        sink: ItemSink,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        loop: asyncio.AbstractEventLoop,
        limits: Limits | None = None,
    ) -> None:
        super().__init__(sink, fn, args, kwargs, loop)
        self.limits = limits


class MapChunkItem(TimedAsyncItem):
    """One chunk of a ``map`` (``mapping.py``), carried as a single item: it
    always travels alone in its own executor call, and its duration (a whole
    chunk's) does not count as one item's for the chunk planner. Its limits,
    if any, are the whole chunk's."""

    __slots__ = ()
    timed = False

    def name(self) -> str:
        function = self.args[0] if self.args else self.fn  # run_map_chunk(fn, ...)
        return f"{function_name(function)} (a chunk of a map)"


class ThreadItem(concurrent.futures.Future[Any], _ItemFields):
    """An item submitted from another thread; a standard concurrent future.

    ``origin`` is the submitting thread's ident: the hand-off never lets an
    item wait for the thread that submitted it (see ``handoff.py``).

    The grinder never marks an item running (``set_running_or_notify_cancel``),
    so a caller may cancel it until it has a result; a callable that is
    already running then finishes and its result is dropped.
    """

    __slots__ = (
        "args", "context", "ending", "enqueued_at", "fn", "handed_at", "kwargs", "origin",
        "outcome", "requeued", "sink", "started_at", "state",
    )

    def __init__(
        self,
        sink: ItemSink,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        super().__init__()
        _init_fields(self, sink, fn, args, kwargs, INBOX)
        self.origin = threading.get_ident()
        self.ending: str | None = None  # how it ends, once claimed (under _CLAIM)
        self.handed_at = 0.0  # time.monotonic() when the hand-off queued it

    def _claim(self, how: str) -> str | None:
        """Claim the item's end as ``how``; ``None`` if this call won, else
        how it was claimed before."""
        with _CLAIM:
            before = self.ending
            if before is None:
                self.ending = how
        return before

    def cancel(self) -> bool:
        before = self._claim("cancelled")
        if before is not None:
            return before == "cancelled"  # as Future.cancel(): True if cancelled
        self.sink.item_ended(self, "cancelled")  # before anyone can see it cancelled
        # The future runs its done-callbacks inside cancel(): hold no lock of
        # ours there (a callback may cancel another item). Nothing else ends
        # the future (the grinder never marks it running), so this succeeds.
        super().cancel()
        # Notifies concurrent.futures.wait() and as_completed() (no executor
        # ever calls it for a grinder item).
        self.set_running_or_notify_cancel()
        self.sink.item_cancelled(self)
        return True

    def resolve(self, outcome: Outcome) -> bool:
        """Set the outcome (from any thread); whether it did (not if the
        item had ended already)."""
        ok, value = outcome
        how = "completed" if ok else "failed"
        if self._claim(how) is not None:
            return False  # cancelled by its caller meanwhile (and counted then)
        # Counted before its caller can have the result.
        self.sink.item_ended(self, how, None if ok else value)
        if ok:
            self.set_result(value)
        else:
            self.set_exception(value)
        return True


class TimedThreadItem(ThreadItem):
    """A :class:`ThreadItem` with time limits; travels alone, as
    :class:`TimedAsyncItem` does, and never through the thread hand-off."""

    __slots__ = ("limits",)
    solo = True

    def __init__(
        self,
        sink: ItemSink,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        limits: Limits | None = None,
    ) -> None:
        super().__init__(sink, fn, args, kwargs)
        self.limits = limits


Item = AsyncItem | ThreadItem


def forget_call(item: Item) -> None:
    """Drop an item's call, arguments and context once it is done with them
    (they may be large)."""
    item.fn, item.args, item.kwargs, item.context = None, (), {}, None
