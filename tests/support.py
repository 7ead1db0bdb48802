"""Helpers for tests: a coroutine runner and deadline-bounded waits.

No pytest-asyncio: :func:`run` drives a coroutine on a fresh loop with
``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")




def run(coro: Coroutine[Any, Any, T], *, timeout: float = 60.0) -> T:
    """Run ``coro`` to completion on a new event loop, bounded by ``timeout``."""

    async def _bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(_bounded())


def wait_until(
    predicate: Callable[[], bool], *, timeout: float = 10.0, interval: float = 0.005
) -> None:
    """Wait for ``predicate()`` to hold, failing the test after ``timeout``.

    For conditions in another thread or process that offer nothing to wait
    on; the deadline is generous so a loaded machine does not flake.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {predicate}")
        time.sleep(interval)


async def await_until(
    predicate: Callable[[], bool], *, timeout: float = 10.0, interval: float = 0.005
) -> None:
    """Async twin of :func:`wait_until`."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {predicate}")
        await asyncio.sleep(interval)


