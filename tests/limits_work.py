"""Functions the time-limit tests run on workers (module level: they pickle)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from neoleasepool import SoftTimeLimitExceeded, current_item


def pid_then_sleep(path: str, seconds: float) -> int:
    """Write the worker's pid to ``path``, then sleep ``seconds`` (a hung item)."""
    Path(path).write_text(str(os.getpid()))
    time.sleep(seconds)
    return os.getpid()


def getpid(value: object = None) -> int:
    return os.getpid()


def echo(*args: object, **kwargs: object) -> tuple[tuple[object, ...], dict[str, object]]:
    """Return the arguments as received (to show none were taken)."""
    return args, kwargs


def limits_seen() -> tuple[float | None, float | None, str]:
    """What ``current_item()`` says on the worker."""
    token = current_item()
    return token.timeout, token.soft_timeout, token.function


def clean_up_on_soft_limit(seconds: float) -> str:
    """Sleep; on the soft limit, clean up and return."""
    try:
        time.sleep(seconds)
    except SoftTimeLimitExceeded:
        return "cleaned up"
    return "slept"


def until_cancelled(started: threading.Event, seen: list[bool], bound: float = 30.0) -> str:
    """Thread item: signal its start, then stop at the first safe point after
    its token says so (a cooperative function), within ``bound`` seconds."""
    started.set()
    token = current_item()
    deadline = time.monotonic() + bound
    while not token.cancelled and time.monotonic() < deadline:
        time.sleep(0.005)
    seen.append(token.cancelled)
    return "stopped"


def blocked(started: threading.Event, release: threading.Event) -> str:
    """Thread item that ignores its token: runs until ``release`` (bounded)."""
    started.set()
    release.wait(30)
    return "released"
