"""The state a :class:`~.pool.WorkerPool` and its manager thread share.

Everything here is guarded by :attr:`Shared.lock` (``pool.py`` says who
writes what). The lock is never held while a future's callbacks run, nor
while the manager thread waits, starts a process or moves a large pickle.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import deque
from multiprocessing.connection import Pipe
from typing import Any

from .futures import Call
from .protocol import RETIRE_REASONS

__all__ = ["RESTART_REASONS", "Shared"]

#: The keys of ``stats()["restarts"]``: why workers were replaced.
RESTART_REASONS = ("died", "timeout", "cancelled", "killed", *RETIRE_REASONS[1:])


class Shared:
    """Queue, flags and figures of one pool.

    Attributes:
        lock: Guards every attribute below (reentrant; see ``__init__``).
        pending: Calls not yet sent to a worker, oldest first.
        shutdown: ``shutdown()`` was called: no more submits.
        broken: Why the pool is broken, or ``None``.
        kill_epoch: How many times ``kill_workers()`` was called.
        figures: The manager's figures for ``stats()`` (worker counts,
            ``calls_done``, ``restarts``), published before it resolves the
            futures they concern.
        closed: The manager thread has finished (waking it does nothing).
    """

    def __init__(self) -> None:
        # Reentrant: a pool dropped in a reference cycle may be collected
        # (and its finalizer take this lock) while a thread holds it.
        self.lock = threading.RLock()
        self.pending: deque[Call] = deque()
        self.shutdown = False
        self.broken: str | None = None
        self.kill_epoch = 0
        self.figures: dict[str, Any] = {
            "workers": 0,
            "busy": 0,
            "idle": 0,
            "starting": 0,
            "stopping": 0,
            "calls_done": 0,
            "restarts": dict.fromkeys(RESTART_REASONS, 0),
        }
        self.closed = False
        self._wake_pending = False
        self.wake_reader, self._wake_writer = Pipe(duplex=False)
        _ALL.add(self)

    def wake_locked(self) -> None:
        """Make the manager thread's next wait return (at most one byte is
        ever in the pipe: a wake already pending covers this one too)."""
        if not self._wake_pending and not self.closed:
            self._wake_pending = True
            self._wake_writer.send_bytes(b"w")

    def wake(self) -> None:
        """:meth:`wake_locked`, taking the lock."""
        with self.lock:
            self.wake_locked()

    def consume_wake_locked(self) -> None:
        """Take the pending wake byte (the manager thread, after its wait
        returned). Whatever changed before this is seen by the pass that
        follows; whatever changes after it writes a new byte."""
        if self._wake_pending:
            self.wake_reader.recv_bytes()
            self._wake_pending = False

    def drop_cancelled_locked(self) -> None:
        """Drop the calls cancelled at the head of ``pending``: never sent."""
        pending = self.pending
        while pending and pending[0].future.cancelled():
            pending.popleft()

    def close_locked(self) -> None:
        """The manager thread is finishing: close the wake pipe."""
        self.closed = True
        self._wake_writer.close()
        self.wake_reader.close()


#: Every pool's shared state, so that a forked child can disown them.
_ALL: weakref.WeakSet[Shared] = weakref.WeakSet()


def _disown_after_fork() -> None:
    """In a forked child: the pools (their manager threads, workers and
    wake pipes) are the parent's. The child is single-threaded here, so
    each lock is replaced rather than taken (a parent thread may have held
    it); then the pool refuses work instead of writing into the parent's
    wake pipe (which would make the parent's manager spin) or waiting for
    a manager thread the child does not have."""
    for shared in list(_ALL):
        shared.lock = threading.RLock()
        shared.closed = True
        shared.pending.clear()
        if shared.broken is None:
            shared.broken = (
                f"this WorkerPool belongs to process {os.getppid()}; a forked child "
                "cannot use it (create a pool in the child)"
            )


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_disown_after_fork)
