"""The functions a chunk runs on a worker: one executor call, several items.

They run on the worker (a thread of this process, or another process), so
they are plain module-level functions that pickle by reference.
:func:`run_items` runs an in-process chunk on the item objects themselves and
skips items cancelled meanwhile; :func:`run_calls` runs plain
``(fn, args, kwargs)`` tuples; :func:`run_calls_pickled` also pickles the
outcomes, item by item when the whole list cannot be.
"""

from __future__ import annotations

import contextvars
import pickle
import time
from collections.abc import Callable, Sequence
from typing import Any

from .._util import current
from .items import Item, Outcome

__all__ = [
    "Call",
    "MapResults",
    "call_captured",
    "run_calls",
    "run_calls_pickled",
    "run_items",
    "run_map_chunk",
]

#: One call as it travels to a worker.
Call = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]


def call_captured(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    context: contextvars.Context | None = None,
) -> Outcome:
    """Call ``fn(*args, **kwargs)`` (in ``context``, if given); return its
    result or what it raised, as an outcome."""
    try:
        if context is None:
            return (True, fn(*args, **kwargs))
        return (True, context.run(fn, *args, **kwargs))
    except BaseException as exc:  # handed to this item's future only
        return (False, exc)


def run_items(items: Sequence[Item]) -> float:
    """Run an in-process chunk; store each outcome on its item.

    Items that ended before their turn (cancelled, or failed by a stop or
    a fault) are skipped and never run. A
    ``BaseException`` (``SystemExit``, ``KeyboardInterrupt``) raised by one
    callable becomes that item's outcome, as ``concurrent.futures`` does.
    Each runs in its submitter's ``contextvars`` context. While an item
    runs it is this thread's ``current_item()``; a timed
    item (alone in its chunk) tells its grinder when it started, which
    arms its time limit.

    Returns:
        Seconds spent running the chunk.
    """
    start = time.perf_counter()
    slot = current.slot()
    previous = getattr(slot, "source", None)
    slot.started = time.monotonic()
    try:
        for item in items:
            fn = item.fn
            if fn is None or item.done():
                continue
            slot.source = item
            if item.limits is not None:
                item.sink.item_started(item, slot.started)
            item.outcome = call_captured(fn, item.args, item.kwargs, item.context)
    finally:
        slot.source, slot.started = previous, None
    return time.perf_counter() - start


def run_calls(calls: Sequence[Call]) -> tuple[list[Outcome], float]:
    """Run a chunk of plain calls (in a worker process); return outcomes.

    Returns:
        Each call's outcome in order, and the seconds spent.
    """
    start = time.perf_counter()
    outcomes = [call_captured(fn, args, kwargs) for fn, args, kwargs in calls]
    return outcomes, time.perf_counter() - start


def run_calls_pickled(calls: Sequence[Call]) -> tuple[bytes, float]:
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


#: What a map chunk gives back: each input's result in order (``None`` where
#: it failed), the failures by position (``None`` when there were none), and
#: the seconds the calls took.
MapResults = tuple[list[Any], "dict[int, BaseException] | None", float]


def run_map_chunk(
    fn: Callable[..., Any], inputs: Sequence[Any], star: bool, pickled: bool
) -> MapResults | tuple[bytes, float]:
    """Run ``fn`` over one chunk of a ``map`` on a worker.

    Args:
        fn: The user's function.
        inputs: One argument per call, or (``star``) a tuple of arguments.
        star: Whether each input is a tuple of arguments.
        pickled: Return the results pickled here (process-like backends),
            so that one result that cannot travel fails only its own input.

    Returns:
        :data:`MapResults`, or (``pickled``) ``(pickle of results and
        failures, seconds)``.
    """
    start = time.perf_counter()
    results: list[Any] = []
    append = results.append
    failures: dict[int, BaseException] | None = None
    for index, value in enumerate(inputs):
        try:
            append(fn(*value) if star else fn(value))
        except BaseException as exc:  # that input's error, as call_captured does
            append(None)
            if failures is None:
                failures = {}
            failures[index] = exc
    seconds = time.perf_counter() - start
    if not pickled:
        return results, failures, seconds
    try:
        return pickle.dumps((results, failures)), seconds
    except Exception:
        return pickle.dumps(_picklable_results(results, failures)), seconds


def _picklable_results(
    results: list[Any], failures: dict[int, BaseException] | None
) -> tuple[list[Any], dict[int, BaseException]]:
    """Results and failures with what cannot be pickled turned into errors."""
    kept: dict[int, BaseException] = {}
    for index, exc in (failures or {}).items():
        ok, value = _picklable((False, exc))
        kept[index] = value
    for index, result in enumerate(results):
        if index not in kept:
            ok, value = _picklable((True, result))
            if not ok:
                results[index] = None
                kept[index] = value
    return results, kept


def _picklable(outcome: Outcome) -> Outcome:
    try:
        pickle.dumps(outcome)
    except Exception as exc:  # this item's result (or error) cannot travel back
        return (False, TypeError(f"the call's outcome could not be pickled: {exc}"))
    return outcome
