"""Cheap bridges between ``concurrent.futures`` and asyncio.

``asyncio.wrap_future`` chains two futures with callbacks in both
directions and copies state generically; on the per-item hot path we only
need one direction plus cancel propagation, so these helpers do exactly
that and nothing more.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any, TypeVar

__all__ = ["copy_outcome", "resolve_from_thread", "transfer_concurrent"]

T = TypeVar("T")


def copy_outcome(
    source: concurrent.futures.Future[Any], target: asyncio.Future[Any]
) -> None:
    """Copy a finished concurrent future's outcome into an asyncio future.

    Must run on ``target``'s loop.  Does nothing if ``target`` is already
    done (for example, cancelled by its awaiter).
    """
    if target.done():
        return
    if source.cancelled():
        target.cancel()
        return
    exc = source.exception()
    if exc is not None:
        target.set_exception(exc)
    else:
        target.set_result(source.result())


def transfer_concurrent(
    source: concurrent.futures.Future[T],
    loop: asyncio.AbstractEventLoop,
) -> asyncio.Future[T]:
    """Return an asyncio future on ``loop`` that mirrors ``source``.

    Cancelling the returned future cancels ``source`` (a running callable
    keeps running, as ``concurrent.futures`` defines).
    """
    target: asyncio.Future[T] = loop.create_future()

    def _on_source_done(done: concurrent.futures.Future[T]) -> None:
        if not target.done():
            try:
                loop.call_soon_threadsafe(copy_outcome, done, target)
            except RuntimeError:
                # The loop is closed: nobody can await ``target`` any more.
                pass

    def _on_target_done(done: asyncio.Future[T]) -> None:
        if done.cancelled():
            source.cancel()

    target.add_done_callback(_on_target_done)
    source.add_done_callback(_on_source_done)
    return target


def resolve_from_thread(
    target: concurrent.futures.Future[T], outcome: asyncio.Future[T]
) -> None:
    """Copy a finished asyncio future's outcome into a concurrent future.

    Safe to call from the loop thread; ``target`` may already be cancelled
    by a waiting thread, in which case nothing happens.
    """
    if outcome.cancelled():
        target.cancel()
        return
    exc = outcome.exception()
    try:
        if exc is not None:
            target.set_exception(exc)
        else:
            target.set_result(outcome.result())
    except concurrent.futures.InvalidStateError:
        pass
