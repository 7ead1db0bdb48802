"""Run a blocking call in a short-lived, joined thread.

Stopping must join executors (which can take a while) without blocking the
event loop, and without borrowing the loop's default executor, whose
threads would outlive the stop.  :func:`run_in_thread` starts one named
thread, awaits its result, and joins it before returning.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TypeVar

from .futures import copy_outcome

__all__ = ["run_in_thread"]

T = TypeVar("T")


async def run_in_thread(fn: Callable[[], T], *, name: str) -> T:
    """Run ``fn()`` in a new thread named ``name`` and return its result.

    The thread is joined before this coroutine returns.  If the awaiting
    task is cancelled first, the cancellation propagates at once and the
    (daemon) thread is left to finish its call on its own.
    """
    import concurrent.futures

    loop = asyncio.get_running_loop()
    done: concurrent.futures.Future[T] = concurrent.futures.Future()
    result: asyncio.Future[T] = loop.create_future()

    def _target() -> None:
        try:
            done.set_result(fn())
        except BaseException as exc:  # handed to the awaiting task
            done.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            try:
                loop.call_soon_threadsafe(copy_outcome, done, result)
            except RuntimeError:
                pass

    thread = threading.Thread(target=_target, name=name, daemon=True)
    thread.start()
    try:
        return await result
    finally:
        if done.done():
            thread.join()
