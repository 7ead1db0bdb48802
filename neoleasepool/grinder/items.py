"""Work items of the grinder and the functions that run them (layer 2).

An item *is* its caller's future: :class:`AsyncItem` (an ``asyncio.Future``
for ``enqueue``/``submit``) or :class:`ThreadItem` (a
``concurrent.futures.Future`` for ``submit_from_thread``), carrying the call
to make.  One object per item, no per-item callback: cancelling the future
tells the grinder directly, which drops the item from its queue in O(1).

Items run in *chunks*: one executor call runs several items one after the
other, capturing each item's outcome separately.  :func:`run_items` runs
in-process chunks (thread backend) on the item objects themselves and skips
items cancelled meanwhile; :func:`run_calls` runs pickled chunks (process and
other out-of-process backends) on plain ``(fn, args, kwargs)`` tuples;
:func:`run_calls_pickled` also pickles the outcomes item by item when the
whole list cannot be (process and interpreter backends).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import concurrent.futures._base as _futures_base
import pickle
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

__all__ = [
    "AsyncItem",
    "CancelSink",
    "Item",
    "Outcome",
    "ThreadItem",
    "call_captured",
    "run_calls",
    "run_calls_pickled",
    "run_items",
]

#: ``(True, result)`` or ``(False, exception)`` for one item.
Outcome = tuple[bool, Any]

#: Item states.  A ``submit_from_thread`` item is ``INBOX`` until the loop
#: takes it into the queue; the others start ``QUEUED``.
QUEUED, RUNNING, ENDED, INBOX = 0, 1, 2, 3


class CancelSink(Protocol):
    """What an item tells its grinder: that its caller cancelled it, and
    how it ended (``"completed"``, ``"failed"`` or ``"cancelled"``).

    An item reports its end from the one place its future's final state is
    decided, so the grinder's counts always match the futures, whichever
    thread ends them.
    """

    def _item_cancelled(self, item: Item) -> None: ...

    def _item_cancelled_threadsafe(self, item: Item) -> None: ...

    def _item_ended(self, how: str) -> None: ...


class _ItemFields:
    """What the grinder keeps on an item, whichever kind of future it is.

    The attributes are declared here and set by :func:`_init_fields`; the
    slots are each item class's own, since asyncio's C ``Future`` cannot
    share its instance layout with another base that has slots.
    """

    __slots__ = ()

    sink: CancelSink
    fn: Callable[..., Any] | None
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    enqueued_at: float
    state: int
    outcome: Outcome | None
    requeued: bool  # put back once after a broken pool refused it unrun


def _init_fields(
    item: Item,
    sink: CancelSink,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    state: int,
) -> None:
    """Set the fields of a new ``item`` (after its future's own ``__init__``)."""
    item.sink = sink
    item.fn = fn
    item.args = args
    item.kwargs = kwargs
    item.enqueued_at = time.monotonic()
    item.state = state
    item.outcome = None
    item.requeued = False


class AsyncItem(asyncio.Future[Any], _ItemFields):
    """An item submitted on the grinder's loop; awaiting it gives the result."""

    __slots__ = ("args", "enqueued_at", "fn", "kwargs", "outcome", "requeued", "sink", "state")

    def __init__(
        self,
        sink: CancelSink,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        super().__init__(loop=loop)
        _init_fields(self, sink, fn, args, kwargs, QUEUED)

    def cancel(self, msg: Any | None = None) -> bool:
        if not super().cancel(msg):
            return False
        self.sink._item_ended("cancelled")
        self.sink._item_cancelled(self)
        return True

    def resolve(self, outcome: Outcome) -> None:
        """Set the outcome (on the loop); no-op if already cancelled.

        An asyncio future refuses ``StopIteration`` (``TypeError``), so a
        callable's ``StopIteration`` arrives as the cause of a
        ``RuntimeError``, as in a coroutine (PEP 479).
        """
        if self.done():
            return
        ok, value = outcome
        if ok:
            self.set_result(value)
        elif isinstance(value, StopIteration):
            error = RuntimeError(f"the callable raised StopIteration: {value!r}")
            error.__cause__ = value
            self.set_exception(error)
        else:
            self.set_exception(value)
        self.sink._item_ended("completed" if ok else "failed")


class ThreadItem(concurrent.futures.Future[Any], _ItemFields):
    """An item submitted from another thread; a standard concurrent future.

    ``origin`` is the submitting thread's ident: a lane runner must not be
    handed an item from its own thread (see ``_lane.py``).
    """

    __slots__ = (
        "args", "enqueued_at", "fn", "kwargs", "origin", "outcome", "requeued", "sink", "state",
    )

    def __init__(
        self,
        sink: CancelSink,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        super().__init__()
        _init_fields(self, sink, fn, args, kwargs, INBOX)
        self.origin = threading.get_ident()

    def cancel(self) -> bool:
        if not super().cancel():
            return False
        # No executor will call set_running_or_notify_cancel() on an item,
        # and until then concurrent.futures.wait() and as_completed() do not
        # count a cancelled future as done: notify them here, once.
        # cancel() of a cancelled future returns True again; the first call
        # moves CANCELLED on to CANCELLED_AND_NOTIFIED, so only it reports.
        with self._condition:
            if self._state != _futures_base.CANCELLED:
                return True
            self.set_running_or_notify_cancel()
        self.sink._item_ended("cancelled")
        self.sink._item_cancelled_threadsafe(self)
        return True

    def resolve(self, outcome: Outcome) -> None:
        """Set the outcome (from any thread); no-op if already cancelled."""
        ok, value = outcome
        try:
            if ok:
                self.set_result(value)
            else:
                self.set_exception(value)
        except concurrent.futures.InvalidStateError:
            return  # cancelled by its caller meanwhile (and counted then)
        self.sink._item_ended("completed" if ok else "failed")


Item = AsyncItem | ThreadItem


def call_captured(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Outcome:
    """Call ``fn(*args, **kwargs)``; return its result or what it raised, as an outcome."""
    try:
        return (True, fn(*args, **kwargs))
    except BaseException as exc:  # handed to this item's future only
        return (False, exc)


def run_items(items: Sequence[Item]) -> float:
    """Run an in-process chunk; store each outcome on its item.

    Items cancelled before their turn are skipped and never run.  A
    ``BaseException`` (``SystemExit``, ``KeyboardInterrupt``) raised by one
    callable becomes that item's outcome, as ``concurrent.futures`` does.

    Returns:
        Seconds spent running the chunk.
    """
    start = time.perf_counter()
    for item in items:
        fn = item.fn
        if fn is None or item.cancelled():
            continue
        item.outcome = call_captured(fn, item.args, item.kwargs)
    return time.perf_counter() - start


def run_calls(
    calls: Sequence[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]],
) -> tuple[list[Outcome], float]:
    """Run a chunk of plain calls (in a worker process); return outcomes.

    Returns:
        Each call's outcome in order, and the seconds spent.
    """
    start = time.perf_counter()
    outcomes = [call_captured(fn, args, kwargs) for fn, args, kwargs in calls]
    return outcomes, time.perf_counter() - start


def run_calls_pickled(
    calls: Sequence[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]],
) -> tuple[bytes, float]:
    """:func:`run_calls` in a worker process, returning the outcomes pickled.

    Pickling here, rather than in the executor, lets an unpicklable result
    fail only its own item instead of the whole chunk; the list is pickled
    once, and item by item only if that fails.

    Returns:
        The pickled outcomes (``pickle.loads`` gives :func:`run_calls`'
        list) and the seconds spent running the calls.
    """
    outcomes, seconds = run_calls(calls)
    try:
        return pickle.dumps(outcomes), seconds
    except Exception:
        return pickle.dumps([_picklable(outcome) for outcome in outcomes]), seconds


def _picklable(outcome: Outcome) -> Outcome:
    try:
        pickle.dumps(outcome)
    except Exception as exc:  # this item's result (or error) cannot travel back
        return (False, TypeError(f"the call's outcome could not be pickled: {exc}"))
    return outcome
