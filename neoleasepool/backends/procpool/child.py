"""The worker process side of :class:`~.pool.WorkerPool`.

:func:`worker_main` is the target of every worker process. It puts the
process in a process group of its own (so the parent can stop the worker
together with any process its calls started; a Ctrl-C at the terminal
then reaches the parent only, which decides), runs the pool's
initializer, says it is ready, and then runs one call at a time, each as
it arrives on its pipe, until told to exit, until the parent goes away
(end of file on the pipe; a call running then ends first), or until it
retires.

Everything a call does ends up as its *outcome*: a return value, or any
exception it raised (``SystemExit`` and ``KeyboardInterrupt`` too, as in
``concurrent.futures``). A call that cannot be unpickled here, or whose
outcome cannot be pickled, fails alone: the worker goes on.

A **soft time limit** arms ``SIGALRM`` (``setitimer``) for the call's
duration; its handler raises :class:`~neoleasepool.SoftTimeLimitExceeded`
inside the running function, which may catch it and clean up (Celery's
``soft_time_limit``). The alarm interrupts Python code and blocking
system calls, not a long computation inside a C extension. Where
``SIGALRM`` does not exist the limit is only visible through
``current_item()``. A call that uses ``SIGALRM`` itself cannot have one.

**Recycling** is decided here, after a call and never during one: once a
worker has run ``max_tasks`` calls, once its resident size exceeds
``max_memory`` bytes, or once it is older than ``max_age`` seconds, it
sends its last result together with the reason and exits.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from types import FrameType
from typing import Any

from ..._util.current import ItemToken, install, uninstall
from ...exceptions import SoftTimeLimitExceeded
from .protocol import (
    CALL,
    INIT_FAILED,
    READY,
    RESULT,
    RETIRE_REASONS,
    ChildConfig,
    dump,
    load,
)

__all__ = ["resident_bytes", "worker_main"]

_HAS_ALARM = hasattr(signal, "SIGALRM") and hasattr(signal, "setitimer")


def worker_main(
    conn: Connection, parent_end: Connection | None, config: ChildConfig
) -> None:
    """Run a worker: initialize, then serve calls until told to stop.

    Args:
        conn: This worker's end of its pipe to the parent.
        parent_end: The parent's end, when the process was forked with it
            (closed at once, or the worker would never see the parent go).
        config: The pool's initializer and recycling limits.
    """
    if parent_end is not None:
        parent_end.close()
    if hasattr(os, "setpgid"):
        try:
            os.setpgid(0, 0)
        except OSError:  # already a group leader (a session leader, say)
            pass
    born = time.monotonic()
    if config.initializer is not None:
        try:
            config.initializer(*config.initargs)
        except BaseException as exc:  # any failure breaks the pool; tell why
            _send(conn, dump(INIT_FAILED, (_describe(exc), traceback.format_exc())))
            return
    if not _send(conn, READY):
        return
    done = 0
    while True:
        try:
            frame = conn.recv_bytes()
        except (EOFError, OSError):  # the parent is gone
            return
        if frame[:1] != CALL:
            return  # EXIT
        outcome = _run(frame)
        done += 1
        retire = _retire_reason(config, done, born)
        if not _send(conn, _encode(outcome, retire)) or retire:
            return


def _send(conn: Connection, frame: bytes | memoryview) -> bool:
    try:
        conn.send_bytes(frame)
    except OSError:  # the parent is gone
        return False
    return True


def _describe(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


def _run(frame: bytes) -> tuple[bool, Any, str | None]:
    """Unpickle a call and run it; return ``(ok, value, traceback text)``."""
    try:
        name, timeout, soft_timeout, fn, args, kwargs = load(frame)
    except BaseException as exc:  # fails this call only
        return False, exc, traceback.format_exc()
    previous = install(ItemToken(name, time.monotonic(), timeout, soft_timeout))
    try:
        return True, _call(fn, args, kwargs, name, soft_timeout), None
    except BaseException as exc:  # the call's outcome, whatever it is
        return False, exc, traceback.format_exc()
    finally:
        uninstall(previous)


def _call(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    name: str,
    soft_timeout: float | None,
) -> Any:
    if soft_timeout is None or not _HAS_ALARM:
        return fn(*args, **kwargs)
    alarm = _SoftAlarm(name, soft_timeout)
    previous = signal.signal(signal.SIGALRM, alarm.ring)
    signal.setitimer(signal.ITIMER_REAL, soft_timeout)
    try:
        return fn(*args, **kwargs)
    finally:
        # Disarm before anything else; an alarm that rings in between
        # raises here, and the call fails with it (its limit did pass).
        alarm.armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _SoftAlarm:
    """The ``SIGALRM`` handler of one call with a soft time limit."""

    def __init__(self, name: str, limit: float) -> None:
        self.name = name
        self.limit = limit
        self.started = time.monotonic()
        self.armed = True

    def ring(self, signum: int, frame: FrameType | None) -> None:
        if self.armed:
            self.armed = False
            elapsed = time.monotonic() - self.started
            raise SoftTimeLimitExceeded(self.name, self.limit, elapsed, "soft limit")


def _encode(outcome: tuple[bool, Any, str | None], retire: str | None) -> memoryview:
    header = RESULT + bytes([RETIRE_REASONS.index(retire)])
    try:
        return dump(header, outcome)
    except Exception as exc:  # an outcome that cannot travel fails its call only
        failure = TypeError(f"the call's outcome could not be pickled: {_describe(exc)}")
        return dump(header, (False, failure, outcome[2]))


def _retire_reason(config: ChildConfig, done: int, born: float) -> str | None:
    if config.max_tasks is not None and done >= config.max_tasks:
        return "max_tasks"
    if config.max_memory is not None:
        size = resident_bytes()
        if size is not None and size > config.max_memory:
            return "max_memory"
    if config.max_age is not None and time.monotonic() - born > config.max_age:
        return "max_age"
    return None


def resident_bytes() -> int | None:
    """This process's memory size in bytes, as ``max_memory_per_child`` sees it.

    On Linux, the resident set size now (``/proc/self/statm``). Elsewhere,
    the *peak* resident size (``getrusage``'s ``ru_maxrss``: bytes on
    macOS, KiB on the other BSDs), which never goes down; so there a worker
    retires once it has ever been that large. ``None`` where neither
    exists (Windows): the limit is then not enforced.
    """
    try:
        with open("/proc/self/statm", "rb") as statm:
            resident_pages = int(statm.read().split()[1])
        return resident_pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024
