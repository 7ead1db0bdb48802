"""The grinder's ``map`` methods (``mapping.py`` holds the machinery).

:class:`MapMethods` is a part of :class:`~.facade.WorkGrinder`: the two
public methods a ``map`` starts from, and the way its chunks enter the
grinder. It relies on what the facade provides, declared below.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING, Any

from .._util.limits import Limits, split_limits
from .batches import Batches
from .items import AsyncItem, MapChunkItem
from .map_inputs import check_map_args, map_length
from .mapping import MapRun, MapRuns, map_results
from .options import GrinderOptions
from .progress import progress_bar

__all__ = ["MapMethods"]


class MapMethods:
    """``map`` and ``open_map`` of a :class:`~.facade.WorkGrinder`."""

    # Provided by the facade (declared for type checking only).
    _maps: MapRuns
    _lendable_workers: int
    _options: GrinderOptions

    if TYPE_CHECKING:

        @property
        def _batches(self) -> Batches | None: ...

        def _require_open(self, method: str) -> asyncio.AbstractEventLoop: ...

        def _enqueue(
            self,
            fn: Callable[..., Any],
            args: tuple[Any, ...],
            kwargs: dict[str, Any],
            method: str,
            kind: type[AsyncItem] = AsyncItem,
            limits: Limits | None = None,
        ) -> AsyncItem: ...

    def map(
        self,
        fn: Callable[..., Any],
        /,
        *iterables: Iterable[Any] | AsyncIterable[Any],
        chunk_size: int | None = None,
        ordered: bool = True,
        return_exceptions: bool = False,
        window: int | None = None,
        progress: bool = False,
    ) -> AsyncIterator[Any]:
        """``fn`` over the inputs, as ``Executor.map`` does: an async iterator
        of results, in input order unless ``ordered=False``.

        The inputs (iterables or async iterables, zipped; pulled lazily on
        the grinder's loop) travel in chunks, each one executor call, sized
        from measured item cost unless ``chunk_size`` is given; at most
        ``window`` chunks are out at once, so memory stays bounded whatever
        the input's length. An input's error is raised at its position,
        which ends the stream (with ``return_exceptions=True`` it is given
        in its place instead). Leaving the ``async for`` early, an error, or
        cancelling the consumer cancels every chunk still out (queued ones
        never run). ``progress=True`` draws a bar on ``sys.stderr`` when it
        is a terminal. Each chunk counts as one item in ``stats()``' item
        counts; ``map_*`` keys count the inputs.

        Raises:
            LeasePoolNotStartedError: If the grinder is not started or stopping.
            WrongLoopError: If called from another loop or thread.
            TypeError: If ``fn`` is not callable or an input is not iterable.
            ValueError: If ``chunk_size`` or ``window`` is not a positive integer.
        """
        self._require_open("map")
        check_map_args(fn, iterables, chunk_size, window)

        def open_run() -> MapRun:  # at the first __anext__: nothing runs unread
            return self.open_map(
                fn, *iterables, chunk_size=chunk_size, ordered=ordered, window=window
            )

        bar = progress_bar(progress, map_length(iterables) if progress else None)
        return map_results(open_run, bool(return_exceptions), bar)

    def open_map(
        self,
        fn: Callable[..., Any],
        /,
        *iterables: Iterable[Any] | AsyncIterable[Any],
        chunk_size: int | None = None,
        ordered: bool = True,
        window: int | None = None,
    ) -> MapRun:
        """The run behind :meth:`map`, read chunk by chunk with
        ``await run.next_chunk()`` (a list of ``(ok, value)`` outcomes, or
        ``None`` at the end) and ended with ``await run.close()``: what the
        blocking facade iterates, one loop hop per chunk.

        Raises:
            See :meth:`map`.
        """
        self._require_open("map")
        size, checked_window = check_map_args(fn, iterables, chunk_size, window)
        assert self._batches is not None
        fn, limits = split_limits(fn, self._options.item_timeout)
        run = MapRun(
            self._submit_chunk, fn, iterables, chunk_size=size, ordered=bool(ordered),
            window=checked_window or 2 * self._lendable_workers + 2,
            pickled=not self._batches.kind.in_process, limits=limits,
        )
        self._maps.add(run)
        return run

    def _submit_chunk(
        self, call: Callable[..., Any], args: tuple[Any, ...], limits: Limits | None
    ) -> MapChunkItem:
        item = self._enqueue(call, args, {}, "map", MapChunkItem, limits)
        assert isinstance(item, MapChunkItem)
        return item
