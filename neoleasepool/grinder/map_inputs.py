"""Where a ``map``'s inputs come from, and its arguments checked.

:func:`inputs_of` zips the iterables a ``map`` was given (plain or async)
into one source that the feeder pulls from on the grinder's loop, a chunk
at a time; an error of the source is returned with the inputs before it,
so that it can be raised at its position. The user's iterators are never
closed here (as ``Executor.map`` leaves them): what is not taken stays
theirs.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Sequence
from typing import Any, Protocol

from .._util.validation import check_positive_int

__all__ = ["Inputs", "check_map_args", "inputs_of", "map_length"]


class Inputs(Protocol):
    """A ``map``'s source of inputs."""

    async def take(self, size: int) -> tuple[list[Any], BaseException | None]:
        """Up to ``size`` inputs, and the source's error if it raised."""
        ...


def map_length(iterables: tuple[Any, ...]) -> int | None:
    """How many inputs a ``map`` has, if every iterable can say cheaply
    (sequences and ranges; else ``None``): only for the progress bar."""
    try:
        if all(isinstance(inputs, (Sequence, range)) for inputs in iterables):
            return min(len(inputs) for inputs in iterables)
    except Exception:  # a len() that overflows or fails: show no total
        pass
    return None


def check_map_args(
    fn: Any, iterables: tuple[Any, ...], chunk_size: int | None, window: int | None
) -> tuple[int | None, int | None]:
    """Check ``map``'s arguments; the chunk size and window, checked.

    Raises:
        TypeError: If ``fn`` is not callable or an input is not iterable.
        ValueError: If ``chunk_size`` or ``window`` is not a positive integer.
    """
    if not callable(fn):
        raise TypeError(f"WorkGrinder.map() needs a callable, got {fn!r}")
    if not iterables:
        raise TypeError("WorkGrinder.map() needs at least one iterable of inputs")
    for inputs in iterables:
        if not isinstance(inputs, (Iterable, AsyncIterable)):
            raise TypeError(f"WorkGrinder.map() inputs must be iterable, got {inputs!r}")
    size = None if chunk_size is None else check_positive_int("chunk_size", chunk_size)
    return size, None if window is None else check_positive_int("window", window)


class _SyncInputs:
    """Inputs from plain iterables, pulled on the loop."""

    def __init__(self, iterator: Iterator[Any]) -> None:
        self._iterator = iterator

    async def take(self, size: int) -> tuple[list[Any], BaseException | None]:
        """Up to ``size`` inputs, and the iterable's error if it raised.

        The user's iterators are never closed here (as ``Executor.map``
        leaves them): what is not taken stays theirs.
        """
        taken: list[Any] = []
        append = taken.append
        try:
            for value in itertools.islice(self._iterator, size):
                append(value)
        except BaseException as exc:  # raised at its position, after the inputs before it
            return taken, exc
        return taken, None


class _AsyncInputs:
    """Inputs from async iterables (plain ones among them are wrapped)."""

    def __init__(self, iterators: list[AsyncIterator[Any]], star: bool) -> None:
        self._iterators = iterators
        self._star = star

    async def take(self, size: int) -> tuple[list[Any], BaseException | None]:
        taken: list[Any] = []
        try:
            while len(taken) < size:
                values = []
                for iterator in self._iterators:
                    values.append(await iterator.__anext__())
                taken.append(tuple(values) if self._star else values[0])
        except StopAsyncIteration:
            pass
        except asyncio.CancelledError:
            raise  # the feeder's: MapRun tells its own cancel from the input's
        except BaseException as exc:
            return taken, exc
        return taken, None


def inputs_of(iterables: tuple[Iterable[Any] | AsyncIterable[Any], ...]) -> Inputs:
    """The inputs of a ``map`` over ``iterables``, zipped (shortest wins)."""
    if not any(isinstance(it, AsyncIterable) for it in iterables):
        sync: list[Iterable[Any]] = list(iterables)  # type: ignore[arg-type]
        return _SyncInputs(iter(sync[0]) if len(sync) == 1 else zip(*sync, strict=False))
    iterators = [
        it.__aiter__() if isinstance(it, AsyncIterable) else _as_async(it) for it in iterables
    ]
    return _AsyncInputs(iterators, star=len(iterables) > 1)


async def _as_async(iterable: Iterable[Any]) -> AsyncIterator[Any]:
    for value in iterable:
        yield value
