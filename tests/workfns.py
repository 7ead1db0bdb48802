"""Module-level callables for process-pool tests.

Worker processes start with ``forkserver`` (or ``spawn``), so everything
they run must be importable by name: ``from tests.workfns import ...``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

_init_value: object = None


def square(value: int) -> int:
    """Return ``value * value``."""
    return value * value


def getpid() -> int:
    """Return the worker's process id."""
    return os.getpid()


def crash(code: int = 3) -> None:
    """Kill the worker process at once, as a segfault or OOM kill would."""
    os._exit(code)


def sleep_then(seconds: float, value: object) -> object:
    """Sleep ``seconds`` in the worker, then return ``value``."""
    time.sleep(seconds)
    return value


def gated(started: str, release: str, value: object, timeout: float = 60.0) -> object:
    """Create ``started``, wait (bounded) until ``release`` exists, return ``value``.

    Workers signal and wait through files, since a ``threading.Event`` does
    not cross a process boundary; the test creates the release file to let
    the call finish.
    """
    Path(started).touch()
    deadline = time.monotonic() + timeout
    while not os.path.exists(release):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{release} never appeared")
        time.sleep(0.005)
    return value


def remember(value: object) -> None:
    """An ``initializer``: store ``value`` in the worker."""
    global _init_value
    _init_value = value


def remembered() -> object:
    """Return what :func:`remember` stored in this worker."""
    return _init_value


def log_message(logger_name: str, level: int, message: str) -> int:
    """Log ``message`` in the worker; return the worker's pid."""
    logging.getLogger(logger_name).log(level, "%s", message)
    return os.getpid()


def thread_name() -> str:
    """Return the name of the thread running the call (thread backends)."""
    return threading.current_thread().name
