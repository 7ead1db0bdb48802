"""Shared fixtures: the leak check every test runs under.

The autouse ``no_leaks`` fixture fails a test that leaves a thread or a
child process behind, in the spirit of CPython's
``threading_setup``/``threading_cleanup``.  The forkserver process is not
counted: it lives for the whole program by design.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Iterator

import pytest

#: How long a test may take to let its threads and children wind down.
LEAK_GRACE_SECONDS = 10.0


def _forkserver_pid() -> int | None:
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    return getattr(server, "_forkserver_pid", None)


def _live_children() -> set[int]:
    ignore = _forkserver_pid()
    return {
        p.pid
        for p in multiprocessing.active_children()
        if p.pid is not None and p.pid != ignore
    }


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Fail the test if it leaves threads or child processes behind."""
    threads_before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + LEAK_GRACE_SECONDS
    while True:
        extra_threads = [
            t for t in threading.enumerate() if t not in threads_before and t.is_alive()
        ]
        children = _live_children()
        if not extra_threads and not children:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)
    names = sorted(t.name for t in extra_threads)
    pytest.fail(f"test left threads {names} and child processes {sorted(children)}")
