"""Chunk kinds: how a group of items travels to a worker and back.

A chunk is one executor call that runs several items one after the other.
How it travels depends on what the backend can do (its capability flags,
never its name):

* :class:`InProcessChunks` (``in_process``): the worker gets the item
  objects and stores each outcome on its item; thread items can be resolved
  on the worker thread at once.
* :class:`CallChunks`: the worker gets plain ``(fn, args, kwargs)`` tuples
  and returns a list of outcomes (a Dask cluster, a registered executor).
* :class:`PickledChunks` (``pickles_calls``): as :class:`CallChunks`, but
  the outcomes come back pickled by the worker itself, so one unpicklable
  result fails only its own item; and a chunk refused as a whole (an
  unpicklable callable or argument) never ran, so its items may be sent
  again one by one. On a backend that ``stops_calls`` (our own process
  pool), a timed item (which travels alone) is sent with its limits, and
  the pool stops the worker running it when they pass.
"""

from __future__ import annotations

import concurrent.futures
import pickle
from collections.abc import Sequence
from typing import Any, Protocol, cast

from .._util.limits import Limits
from ..backends.base import StoppingExecutor, get_backend
from ..exceptions import UnsupportedBackendError
from .calls import run_calls, run_calls_pickled, run_items
from .items import RUNNING, Item

__all__ = [
    "CallChunks", "ChunkKind", "InProcessChunks", "PickledChunks", "chunk_kind", "chunk_kind_for",
]


class ChunkKind(Protocol):
    """How one kind of chunk is sent and read back."""

    #: Items run in this process (and may be resolved on the worker thread).
    in_process: bool
    #: A chunk that fails as a whole never ran (its items may be resent).
    resend_refused: bool
    #: Its backend's executors enforce a timed item's limits and can stop
    #: a running call (cancelling its future stops its worker).
    stops_calls: bool

    def enforces_limits(self, executor: concurrent.futures.Executor) -> bool:
        """Whether ``executor`` enforces the limits of a timed item sent to
        it (else the grinder keeps the time itself)."""

    def send(self, executor: concurrent.futures.Executor, items: list[Item]) -> Any:
        """Submit ``items`` as one call; the executor's future.

        Raises:
            Exception: Whatever ``executor.submit`` raises.
        """

    def read(self, result: Any, items: Sequence[Item]) -> float:
        """Store each item's outcome from the call's ``result``; the seconds
        the worker spent.

        Raises:
            Exception: If the outcomes cannot be read back (all items fail).
        """


class InProcessChunks:
    """Item objects run on a worker thread of this process."""

    in_process = True
    resend_refused = False
    stops_calls = False

    def send(self, executor: concurrent.futures.Executor, items: list[Item]) -> Any:
        return executor.submit(run_items, items)

    def enforces_limits(self, executor: concurrent.futures.Executor) -> bool:
        return False

    def read(self, result: Any, items: Sequence[Item]) -> float:
        return float(result)  # run_items stored the outcomes already


class CallChunks:
    """Plain calls sent to a worker elsewhere; outcomes come back as a list."""

    in_process = False
    resend_refused = False
    stops_calls = False

    def send(self, executor: concurrent.futures.Executor, items: list[Item]) -> Any:
        return executor.submit(run_calls, _calls(items))

    def enforces_limits(self, executor: concurrent.futures.Executor) -> bool:
        return False

    def read(self, result: Any, items: Sequence[Item]) -> float:
        outcomes, seconds = result
        for item, outcome in zip(items, self.decode(outcomes), strict=True):
            item.outcome = outcome
        return float(seconds)

    @staticmethod
    def decode(outcomes: Any) -> list[Any]:
        """The outcomes as the worker sent them back."""
        return list(outcomes)


class PickledChunks(CallChunks):
    """Calls sent pickled; the worker pickles the outcomes itself."""

    resend_refused = True

    def __init__(self, stops_calls: bool = False) -> None:
        self.stops_calls = stops_calls

    def send(self, executor: concurrent.futures.Executor, items: list[Item]) -> Any:
        limits = items[0].limits
        if limits is not None and self.enforces_limits(executor):  # a timed item, alone
            return _send_limited(executor, items[0], limits)
        return executor.submit(run_calls_pickled, _calls(items))

    def enforces_limits(self, executor: concurrent.futures.Executor) -> bool:
        # A stand-in manager naming this backend may lend other executors.
        return self.stops_calls and isinstance(executor, StoppingExecutor)

    @staticmethod
    def decode(outcomes: Any) -> list[Any]:
        decoded: list[Any] = pickle.loads(outcomes)
        return decoded


def chunk_kind(in_process: bool, pickles_calls: bool, stops_calls: bool = False) -> ChunkKind:
    """The chunk kind for a backend with these capabilities."""
    if in_process:
        return InProcessChunks()
    return PickledChunks(stops_calls) if pickles_calls else CallChunks()


def chunk_kind_for(name: object) -> ChunkKind:
    """The chunk kind for the backend a manager names. A backend we cannot
    look up (a user's stand-in manager names none) gets plain calls, which
    work on any executor."""
    if not isinstance(name, str):  # (an ExecutorBackend is a str too)
        return CallChunks()
    try:
        backend = get_backend(name)
    except (UnsupportedBackendError, ValueError):
        return CallChunks()
    return chunk_kind(backend.in_process, backend.pickles_calls, backend.stops_calls)


def _send_limited(executor: concurrent.futures.Executor, item: Item, limits: Limits) -> Any:
    """Send a timed item with its limits (its executor checked ``stops_calls``)."""
    stopping = cast(StoppingExecutor, executor)
    timeout, soft_timeout = limits
    return stopping.submit_limited(
        run_calls_pickled, (_calls([item]),), {},
        timeout=timeout, soft_timeout=soft_timeout, name=item.name(),
    )


def _calls(items: list[Item]) -> list[Any]:
    return [(i.fn, i.args, i.kwargs) for i in items]


def sendable(items: list[Item], kind: ChunkKind) -> list[Item]:
    """The items of a chunk that still need to run (out of process only: an
    in-process chunk checks each item on the worker itself)."""
    if kind.in_process:
        return items
    return [i for i in items if i.state == RUNNING and i.fn is not None]
