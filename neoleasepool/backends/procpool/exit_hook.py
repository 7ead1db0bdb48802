"""Pools still running when the interpreter exits are drained and joined.

Worker processes are not daemonic (their calls may start processes of
their own), so multiprocessing's exit hook joins them; they must be gone
before it runs. threading's exit hooks run before any atexit hook (this is
how concurrent.futures stops its executors); plain atexit is the fallback.
"""

from __future__ import annotations

import atexit
import os
import threading
from multiprocessing import util as _mp_util  # noqa: F401  (its exit hook first)
from typing import Protocol

from .shared import Shared

__all__ = ["RUNNING"]


class _Running(Protocol):
    shared: Shared
    thread: threading.Thread


#: Pool managers whose thread runs (each adds itself, and leaves when done).
RUNNING: set[_Running] = set()


def _stop_all_at_exit() -> None:
    """Shut every running pool down (its queue drains, as the stdlib
    executors' does) and join its manager thread."""
    managers = list(RUNNING)
    for manager in managers:
        with manager.shared.lock:
            manager.shared.shutdown = True
            manager.shared.wake_locked()
    for manager in managers:
        manager.thread.join()


getattr(threading, "_register_atexit", atexit.register)(_stop_all_at_exit)
# A forked child has none of its parent's threads to stop.
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=RUNNING.clear)
