"""Work functions and helpers for the WorkGrinder tests.

Process pools start their workers with ``forkserver``, so the functions
they run must be importable by name; they live here at module level.
Workers signal and wait through files, since a ``threading.Event`` does
not cross a process boundary.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

from tests.workfns import gated


def square(value: int) -> int:
    """Return ``value * value``."""
    return value * value


def fail_with(message: str) -> None:
    """Raise ``KeyError(message)``."""
    raise KeyError(message)


def fail_if_odd(value: int) -> int:
    """Return ``value``, or raise ``ValueError`` if it is odd."""
    if value % 2:
        raise ValueError(f"odd {value}")
    return value


def raise_base(kind: str) -> None:
    """Raise ``SystemExit`` or ``KeyboardInterrupt``, as the name says."""
    if kind == "exit":
        raise SystemExit(7)
    raise KeyboardInterrupt


def raise_stop_iteration() -> None:
    """Raise ``StopIteration`` (which an asyncio future refuses to hold)."""
    raise StopIteration("exhausted")


def make_lock() -> threading.Lock:
    """Return an object that cannot be pickled back from a worker process."""
    return threading.Lock()


def append_line(path: str, value: object) -> object:
    """Append ``value`` to the file at ``path`` (a side effect to count); return it."""
    with open(path, "a") as file:
        file.write(f"{value}\n")
    return value


def crash(code: int = 3) -> None:
    """Kill the worker process at once, as a segfault or OOM kill would."""
    os._exit(code)


def getpid_after(value: object) -> tuple[int, object]:
    """Return the worker's process id and ``value``."""
    return os.getpid(), value


def wait_for_file(started: str, release: str, value: object, timeout: float = 30.0) -> object:
    """:func:`tests.workfns.gated` with a shorter bound: touch ``started``, wait for ``release``."""
    return gated(started, release, value, timeout)


def sleep_then(seconds: float, value: object) -> object:
    """Sleep ``seconds``, then return ``value`` (a deliberately slow item)."""
    time.sleep(seconds)
    return value


def wait_then(event: threading.Event, seconds: float, value: object) -> tuple[bool, object]:
    """Wait (bounded) for ``event``, sleep ``seconds``; return whether it was set."""
    was_set = event.wait(5)
    time.sleep(seconds)
    return was_set, value


class Counter:
    """A thread-safe call counter: ``counter(value)`` counts and returns ``value``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = 0

    def __call__(self, value: object = None) -> object:
        with self._lock:
            self.calls += 1
        return value


class EndCounter:
    """Counts how many times each future ends (its done-callbacks run)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.ends: dict[int, int] = {}

    def watch(self, future: Any) -> Any:
        self.ends.setdefault(id(future), 0)
        future.add_done_callback(self._ended)
        return future

    def _ended(self, future: Any) -> None:
        with self._lock:
            self.ends[id(future)] += 1

    def all_ended_once(self) -> bool:
        with self._lock:
            return all(count == 1 for count in self.ends.values())


def collect_loop_errors(loop: asyncio.AbstractEventLoop) -> list[dict[str, Any]]:
    """Record what the loop's exception handler receives (errors in callbacks)."""
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    return errors



class TwoArgError(Exception):
    """An exception that pickles but cannot be unpickled (its __init__ needs two arguments)."""

    def __init__(self, a: object, b: object) -> None:
        super().__init__(f"{a}-{b}")


def raise_two_arg(value: int) -> int:
    """Return ``value``, or raise :class:`TwoArgError` if it is 3."""
    if value == 3:
        raise TwoArgError(value, "x")
    return value
