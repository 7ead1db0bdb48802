"""Module-level callables of the reliability suites.

Process workers start with ``forkserver``, so everything they run must be
importable by name: ``from tests.chaos_work import ...``.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

#: The secret marker of ``tests/test_security.py``.
SECRET = "s3cr3t-MARKER-7f2b"


def compute(value: int) -> int:
    """The chaos suites' item: a cheap, checkable function of ``value``."""
    return value * 3 + 1


def crash_or_compute(value: int, crash: bool) -> int:
    """``os._exit`` the worker process when ``crash``; else :func:`compute`."""
    if crash:
        os._exit(7)
    return compute(value)


def pid_then(path: str, seconds: float, value: int) -> int:
    """Write this worker's pid to ``path``, sleep, return :func:`compute`."""
    Path(path).write_text(str(os.getpid()))
    time.sleep(seconds)
    return compute(value)


def sleep_then(seconds: float, value: object) -> object:
    """Sleep ``seconds``, then return ``value``."""
    time.sleep(seconds)
    return value


def kill_self() -> None:
    """SIGKILL the calling worker process."""
    os.kill(os.getpid(), signal.SIGKILL)


def raise_base(kind: str) -> None:
    """Raise ``SystemExit`` or ``KeyboardInterrupt``."""
    if kind == "exit":
        raise SystemExit(3)
    raise KeyboardInterrupt


def echo(value: object) -> object:
    """Return ``value``."""
    return value


def fail_with(value: object) -> None:
    """Raise ``ValueError(value)``."""
    raise ValueError(value)


def unpicklable_result() -> object:
    """Return something that cannot be pickled back to the parent."""
    return lambda: None
