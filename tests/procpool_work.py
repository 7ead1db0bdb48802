"""Module-level functions that ``tests/test_procpool.py`` sends to workers.

Workers start with ``forkserver``, so everything they run must be
importable by name. Workers tell the test what they did through files
(a ``threading.Event`` does not cross a process boundary).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from neoleasepool import SoftTimeLimitExceeded, current_item

_kept: list[bytes] = []
_init_value: object = None


def square(value: int) -> int:
    """Return ``value * value``."""
    return value * value


def fail(message: str) -> None:
    """Raise ``ValueError(message)``."""
    raise ValueError(message)


def getpid() -> int:
    """Return the worker's process id."""
    return os.getpid()


def exit_now(code: int = 3) -> None:
    """End the worker process at once, as a crash would."""
    os._exit(code)


def kill_self() -> None:
    """SIGKILL the worker as the call's first statement (pebble issue 153)."""
    os.kill(os.getpid(), signal.SIGKILL)


def raise_system_exit() -> None:
    """Raise ``SystemExit(5)`` (its outcome, not the worker's end)."""
    raise SystemExit(5)


def unpicklable_result() -> object:
    """Return something that cannot be pickled."""
    return threading.Lock()


class NeedsTwoArgs(Exception):
    """An exception that pickles but cannot be unpickled."""

    def __init__(self, first: str, second: str) -> None:
        super().__init__(f"{first} {second}")


def raise_unloadable() -> None:
    """Raise an exception the parent cannot unpickle."""
    raise NeedsTwoArgs("a", "b")


def write_pid(path: str) -> None:
    """Write this worker's pid to ``path`` (the name appears only once written)."""
    temporary = f"{path}.tmp"
    Path(temporary).write_text(str(os.getpid()))
    os.replace(temporary, path)


def pid_then_sleep(path: str, seconds: float) -> int:
    """Write the worker's pid to ``path``, sleep, and return the pid."""
    write_pid(path)
    time.sleep(seconds)
    return os.getpid()


def touch(path: str) -> str:
    """Create ``path`` (a marker that the call ran)."""
    Path(path).touch()
    return path


def hang(path: str | None = None, seconds: float = 60.0) -> None:
    """Write the worker's pid to ``path`` (if given), then sleep ``seconds``."""
    if path is not None:
        write_pid(path)
    time.sleep(seconds)


def hang_ignoring_sigterm(path: str) -> None:
    """Ignore SIGTERM, write the worker's pid to ``path``, then sleep."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    write_pid(path)
    time.sleep(60)


_GRANDCHILD = """
import pathlib, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
pathlib.Path(sys.argv[1]).touch()
time.sleep(60)
"""


def hang_with_grandchildren(path: str) -> None:
    """Start two grandchildren in the worker's process group (``sleep 60``,
    and a Python one that ignores SIGTERM), write their pids, space
    separated, to ``path``, and sleep."""
    sleeper = subprocess.Popen(["sleep", "60"])
    ready = f"{path}.ready"
    stubborn = subprocess.Popen([sys.executable, "-c", _GRANDCHILD, ready])
    temporary = f"{path}.tmp"
    Path(temporary).write_text(f"{sleeper.pid} {stubborn.pid}")
    os.replace(temporary, path)
    _wait_for(ready)  # (it ignores SIGTERM from then on)
    time.sleep(60)


def _wait_for(*paths: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(os.path.exists(path) for path in paths):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{paths} did not all appear")
        time.sleep(0.005)


def gated(path: str, release: str) -> int:
    """Write the worker's pid to ``path``, wait until ``release`` exists, return the pid."""
    write_pid(path)
    _wait_for(release)
    return os.getpid()


def pid_barrier(path: str, paths: list[str]) -> int:
    """Write the worker's pid to ``path``, wait until every one of ``paths``
    exists (so these calls run at once, on different workers), return the pid."""
    write_pid(path)
    _wait_for(*paths)
    return os.getpid()


def sleep_soft(seconds: float) -> str:
    """Sleep ``seconds``; a soft limit interrupts it."""
    time.sleep(seconds)
    return "slept"


def catch_soft(seconds: float) -> str:
    """Sleep ``seconds``; return ``"caught"`` if a soft limit interrupts it."""
    try:
        time.sleep(seconds)
    except SoftTimeLimitExceeded:
        return "caught"
    return "slept"


def token_limits() -> tuple[str, float | None, float | None]:
    """``current_item()``'s function name and limits, as the call sees them."""
    token = current_item()
    return token.function, token.timeout, token.soft_timeout


def keep_megabytes(count: int) -> int:
    """Keep ``count`` MiB alive in this worker (touched, so resident); return the pid."""
    _kept.append(b"x" * (count << 20))
    return os.getpid()


def remember(value: object) -> None:
    """An initializer: keep ``value`` in the worker."""
    global _init_value
    _init_value = value


def recall() -> tuple[object, int]:
    """The initializer's value and the worker's pid."""
    return _init_value, os.getpid()


def init_fail() -> None:
    """An initializer that raises."""
    raise ValueError("no database")


def init_gate(directory: str, release: str) -> None:
    """An initializer that writes ``<directory>/<pid>`` and waits until
    ``release`` exists (so a test can kill a worker before it is ready)."""
    write_pid(os.path.join(directory, str(os.getpid())))
    _wait_for(release)


def init_exit() -> None:
    """An initializer that ends its process."""
    os._exit(4)


def compute(value: int) -> int:
    """The stress test's item: a checkable function of ``value``."""
    return value * 3 + 1


def pid_of(_: object) -> int:
    """The worker's process id, whatever the argument (for ``map``)."""
    return os.getpid()
