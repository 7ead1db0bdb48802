"""``map``: many inputs through the grinder as chunks, streamed back in bounded memory.

A :class:`MapRun` cuts its inputs into chunks. Each chunk is one grinder
item (a :class:`~.items.MapChunkItem`) whose call runs the user's function
over the whole chunk on a worker (:func:`~.calls.run_map_chunk`) and brings
back every result at once, so an input costs the parent a few list
operations, not a future. The chunks take the grinder's usual way: the
queue, batches, several leases at once, stop and fault handling.

* **Chunk sizes** adapt (:class:`ChunkSizer`): the first chunk holds one
  input, so the first result comes back at once; then each chunk aims at
  ``TARGET_SECONDS`` of work as measured on the workers, so tiny inputs
  travel in large chunks and slow ones one by one. ``chunk_size=`` fixes it.
* **Backpressure**: a *feeder* task pulls inputs lazily (from an iterable or
  an async iterable) and keeps at most ``window`` chunks out, counting those
  finished but not yet read by the consumer. A million-input generator is
  never in memory at once.
* **Order**: results come in input order, or (``ordered=False``) chunk by
  chunk as chunks finish. An error of the input iterable itself is raised at
  its position, after the results of the inputs before it.
* **Closing** (the consumer leaves early, is cancelled, or an error ends the
  stream) cancels the feeder and every chunk still out: a queued chunk never
  runs, and its leases go back as usual.

Everything here runs on the grinder's loop.
"""

from __future__ import annotations

import asyncio
import functools
import pickle
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import Any

from .._util.limits import Limits
from ..exceptions import LeasePoolNotStartedError
from ..types import Stats
from .calls import run_map_chunk
from .items import MapChunkItem, Outcome
from .map_inputs import inputs_of
from .progress import ProgressBar

__all__ = [
    "TARGET_SECONDS",
    "ChunkSizer",
    "MapRun",
    "MapRuns",
    "deliver",
    "map_results",
]

#: Work per chunk the automatic sizer aims for, in seconds: long enough to
#: make a chunk's trip (a pickled round trip to a process, a loop turn)
#: a small part of it, short enough to keep results flowing.
TARGET_SECONDS = 0.01

#: Largest automatic chunk (bounds the results held while waiting for order).
MAX_CHUNK = 16384

#: Most a chunk grows from one measurement to the next.
GROWTH = 4

#: Submits one chunk's call, with its time limits, as a grinder item
#: (loop); raises if it cannot.
SubmitChunk = Callable[[Callable[..., Any], tuple[Any, ...], "Limits | None"], MapChunkItem]


class ChunkSizer:
    """Chunk sizes for one ``map``: fixed, or grown from measurements.

    Args:
        fixed: A fixed size, or ``None`` to adapt.
    """

    __slots__ = ("_fixed", "_per_input", "_size")

    def __init__(self, fixed: int | None) -> None:
        self._fixed = fixed
        self._size = 1
        self._per_input: float | None = None

    @property
    def size(self) -> int:
        """The size of the next chunk."""
        return self._fixed or self._size

    def observe(self, inputs: int, seconds: float) -> None:
        """A chunk of ``inputs`` took ``seconds`` on its worker."""
        if self._fixed or inputs <= 0:
            return
        per_input = max(seconds, 1e-9) / inputs
        self._per_input = (
            per_input if self._per_input is None else 0.5 * self._per_input + 0.5 * per_input
        )
        wanted = int(TARGET_SECONDS / self._per_input)
        self._size = max(1, min(wanted, self._size * GROWTH, MAX_CHUNK))


class _Chunk:
    """One chunk out: its position, how many inputs, its item, and (once
    it has ended) its outcomes."""

    __slots__ = ("count", "index", "item", "outcomes")

    def __init__(self, index: int, count: int, item: MapChunkItem) -> None:
        self.index = index
        self.count = count
        self.item = item
        self.outcomes: list[Outcome] | None = None


class MapRun:
    """One ``map``: its feeder, its chunks out, and its counts (loop only).

    Args:
        submit: Queues a chunk's call as a grinder item.
        fn: The user's function.
        iterables: The inputs, zipped as ``map`` does (sync or async).
        chunk_size: A fixed chunk size, or ``None`` to adapt.
        ordered: Results in input order (else as chunks finish).
        window: Most chunks out at once (finished ones not yet read count).
        pickled: Results travel pickled (process-like backends).
        limits: Each input's time limits; a chunk's are that many times
            longer (a chunk runs its inputs one after the other).
    """

    def __init__(
        self,
        submit: SubmitChunk,
        fn: Callable[..., Any],
        iterables: tuple[Iterable[Any] | AsyncIterable[Any], ...],
        *,
        chunk_size: int | None,
        ordered: bool,
        window: int,
        pickled: bool,
        limits: Limits | None = None,
    ) -> None:
        self._submit = submit
        self._limits = limits
        self._fn = fn
        self._star = len(iterables) > 1
        self._inputs = inputs_of(iterables)
        self._sizer = ChunkSizer(chunk_size)
        self._ordered = ordered
        self._window = window
        self._pickled = pickled
        self._out: deque[_Chunk] = deque()  # in input order, not yet read
        self._finished: deque[_Chunk] = deque()  # unordered: finished, not yet read
        self._changed = asyncio.Event()  # a chunk ended, or the feeder did
        self._room = asyncio.Event()  # the consumer read a chunk
        self._fed = False  # the feeder has ended
        self._input_error: BaseException | None = None
        self._closed = False
        self._halted: BaseException | None = None  # why feeding stopped early
        self.started_at = time.monotonic()
        self.done = 0  # inputs whose results were read
        self.in_flight = 0  # inputs in chunks out
        self._feeder = asyncio.get_running_loop().create_task(self._feed())
        self._feeder.add_done_callback(self._feeder_done)

    def __repr__(self) -> str:
        return f"<MapRun done={self.done} in_flight={self.in_flight} chunk={self._sizer.size}>"

    # ------------------------------------------------------------- feeding

    async def _feed(self) -> None:
        """Pull inputs and send chunks while the window has room."""
        index = 0
        try:
            while True:
                while len(self._out) + len(self._finished) >= self._window:
                    self._room.clear()
                    await self._room.wait()
                size = self._sizer.size
                inputs, error = await self._inputs.take(size)
                if inputs:
                    self._send(index, inputs)
                    index += 1
                if error is not None:
                    self._input_error = error
                    return
                if len(inputs) < size:
                    return
        except asyncio.CancelledError as exc:
            if self._closed:
                raise  # close() cancelled the feeder
            # halt() cancelled it (the grinder stops), or an async input
            # raised it: either way the consumer learns it where inputs end.
            self._input_error = self._halted or exc
        except BaseException as exc:  # the grinder refused the chunk (stopping, broken)
            self._input_error = exc
        finally:
            self._fed = True
            self._changed.set()

    def _feeder_done(self, _: object) -> None:
        """However the feeder ended (cancelled before its first step too)."""
        if not self._fed:
            self._fed = True
            if self._input_error is None and not self._closed:
                self._input_error = self._halted
            self._changed.set()

    def _send(self, index: int, inputs: list[Any]) -> None:
        limits = self._limits
        if limits is not None:
            n = len(inputs)
            limits = tuple(None if t is None else t * n for t in limits)  # type: ignore[assignment]
        item = self._submit(run_map_chunk, (self._fn, inputs, self._star, self._pickled), limits)
        chunk = _Chunk(index, len(inputs), item)
        self._out.append(chunk)
        self.in_flight += chunk.count
        item.add_done_callback(functools.partial(self._ended, chunk))

    def _ended(self, chunk: _Chunk, _: object) -> None:
        """A chunk's item ended: decode its outcomes, learn its timing."""
        try:
            chunk.outcomes = self._decode(chunk)
        except Exception as exc:  # results that cannot be unpickled here, say
            error = RuntimeError(f"the results of this map chunk could not be read: {exc!r}")
            error.__cause__ = exc
            chunk.outcomes = [(False, error)] * chunk.count
        if not self._ordered and not self._closed:
            self._out.remove(chunk)
            self._finished.append(chunk)
        self._changed.set()

    def _decode(self, chunk: _Chunk) -> list[Outcome]:
        item = chunk.item
        if item.cancelled():  # a cancelling stop of the grinder, not the consumer's cancel
            stopped = LeasePoolNotStartedError(
                "the WorkGrinder stopped (cancel_pending) before this input ran"
            )
            return [(False, stopped)] * chunk.count
        failure = item.exception()
        if failure is not None:  # the chunk as a whole failed (a broken pool, a stop)
            return [(False, failure)] * chunk.count
        payload, *rest = item.result()
        seconds: float = rest[-1]
        if isinstance(payload, bytes):
            results, failures = pickle.loads(payload)
        else:
            results, failures = payload, rest[0]
        self._sizer.observe(chunk.count, seconds)
        if not failures:
            return [(True, value) for value in results]
        return [
            (False, failures[i]) if i in failures else (True, value)
            for i, value in enumerate(results)
        ]

    # ------------------------------------------------------------- reading

    async def next_chunk(self, deadline: float | None = None) -> list[Outcome] | None:
        """The next chunk's outcomes; ``None`` once every input is done.

        Args:
            deadline: ``time.monotonic()`` after which to stop waiting; a
                chunk that is ready is returned whatever the time.

        Raises:
            BaseException: What the input iterable raised, at its position.
            TimeoutError: If ``deadline`` passed with no chunk ready.
        """
        while True:
            ready = self._next_ready()
            if ready is not None:
                self.done += ready.count
                self.in_flight -= ready.count
                self._room.set()
                assert ready.outcomes is not None
                return ready.outcomes
            if self._closed or (self._fed and not self._out and not self._finished):
                if self._input_error is not None and not self._closed:
                    error, self._input_error = self._input_error, None
                    raise error
                return None
            self._changed.clear()
            if deadline is None:
                await self._changed.wait()
                continue
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise asyncio.TimeoutError
                await asyncio.wait_for(self._changed.wait(), left)
            except asyncio.TimeoutError:  # not the builtin one before 3.11
                raise TimeoutError("no map result within the timeout") from None

    def _next_ready(self) -> _Chunk | None:
        if self._ordered:
            if self._out and self._out[0].outcomes is not None:
                return self._out.popleft()
            return None
        return self._finished.popleft() if self._finished else None

    @property
    def closed(self) -> bool:
        return self._closed

    def halt(self) -> None:
        """The grinder stops: send no more chunks (loop). The chunks out
        still end (drained, or cancelled by a cancelling stop) and are read
        as usual; then the consumer gets ``LeasePoolNotStartedError``
        instead of a silent, short end. The feeder task ends now, so a
        consumer that never comes back holds nothing on the loop."""
        if self._closed or self._fed or self._halted is not None:
            return
        self._halted = LeasePoolNotStartedError(
            "the WorkGrinder stopped before every input of this map was sent"
        )
        self._feeder.cancel()

    async def close(self) -> None:
        """Stop feeding and cancel every chunk still out; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._feeder.cancel()
        for chunk in (*self._out, *self._finished):
            chunk.item.cancel()
        self._out.clear()
        self._finished.clear()
        self.in_flight = 0
        await asyncio.gather(self._feeder, return_exceptions=True)

    def stats(self) -> Stats:
        """Inputs done and in flight, the rate so far, the chunk size."""
        elapsed = max(time.monotonic() - self.started_at, 1e-9)
        return {
            "done": self.done,
            "in_flight": self.in_flight,
            "per_second": self.done / elapsed,
            "chunk_size": self._sizer.size,
        }


class MapRuns:
    """A grinder's ``map`` runs, counted for its ``stats()`` (loop only)."""

    def __init__(self) -> None:
        self._runs: set[MapRun] = set()  # not yet seen closed
        self._done = 0  # inputs done by the closed ones

    def add(self, run: MapRun) -> None:
        self._runs.add(run)

    def halt_all(self) -> None:
        """The grinder stops: every run going on sends no more chunks."""
        for run in self._runs:
            run.halt()

    def stats(self) -> Stats:
        """Inputs of every run so far: done, in flight, and the rate of the
        runs going on now."""
        for run in [r for r in self._runs if r.closed]:
            self._runs.discard(run)
            self._done += run.done
        running = list(self._runs)
        return {
            "map_runs": len(running),
            "map_items_done": self._done + sum(r.done for r in running),
            "map_items_in_flight": sum(r.in_flight for r in running),
            "map_items_per_second": sum(r.stats()["per_second"] for r in running),
        }


async def map_results(
    open_run: Callable[[], MapRun], return_exceptions: bool, bar: ProgressBar | None
) -> AsyncIterator[Any]:
    """The results of the run ``open_run()`` starts, one by one; the run
    starts at the first ``__anext__`` (a stream never iterated holds
    nothing) and is closed however iteration ends.

    An input's error is raised at its position (which ends the stream), or
    with ``return_exceptions`` given in its place.
    """
    run = open_run()
    try:
        while (outcomes := await run.next_chunk()) is not None:
            for value in deliver(outcomes, return_exceptions, bar):
                yield value
    finally:
        await run.close()
        if bar is not None:
            bar.finish()


def deliver(
    outcomes: list[Outcome], return_exceptions: bool, bar: ProgressBar | None
) -> Iterator[Any]:
    """One chunk's results in order, counted on ``bar``; an error is raised
    at its position, or with ``return_exceptions`` given in its place."""
    if bar is not None:
        bar(len(outcomes))
    for ok, value in outcomes:
        if ok or return_exceptions:
            yield value
        else:
            raise value
