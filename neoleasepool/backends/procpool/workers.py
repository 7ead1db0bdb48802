"""One worker process as the pool's manager thread sees it.

A :class:`Worker` is owned by the manager thread alone: no other thread
reads or writes it. It records what the parent knows about the process,
above all which call it holds, from the moment the call is sent (so a
worker that dies right after taking a call still ends that call).

States::

    STARTING --READY--> IDLE --call sent--> BUSY --result--> IDLE
       |                  |                   |   \\--result + retire--> EXITING
       |                  \\--EXIT sent--> EXITING
       |                                      \\--deadline, cancel, kill--> STOPPING
       \\--INIT_FAILED / EXIT sent--> EXITING

Every state ends when the process's sentinel fires (it exited); the
manager then reaps it. ``deadline`` means, by state: BUSY, when its call's
time limit passes; STOPPING, when SIGKILL follows SIGTERM; EXITING, when a
worker that should have left is stopped.
"""

from __future__ import annotations

import enum
import os
import signal
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import Any

from .child import worker_main
from .futures import Call
from .protocol import ChildConfig

__all__ = ["Worker", "WorkerState", "signal_group", "start_worker"]

_SIGKILL: int = getattr(signal, "SIGKILL", signal.SIGTERM)


class WorkerState(enum.Enum):
    """Where a worker is in its life (see the module docstring)."""

    STARTING = "starting"
    IDLE = "idle"
    BUSY = "busy"
    STOPPING = "stopping"
    EXITING = "exiting"


@dataclass(eq=False)
class Worker:
    """A worker process, its pipe, and what it holds.

    Attributes:
        process: The process.
        conn: The parent's end of its pipe.
        pid: The process id.
        born: When it was started (``time.monotonic()``).
        state: See :class:`WorkerState`.
        call: The call it holds (BUSY), else ``None``.
        sent_at: When that call was sent.
        epoch: The pool's ``kill_workers()`` count when that call was sent.
        calls: How many calls it was sent.
        deadline: See the module docstring; ``None`` for none.
        reason: The ``restarts`` key to count when it is gone, if any.
        eof: Its pipe reached end of file (no longer waited on).
    """

    process: BaseProcess
    conn: Connection
    pid: int
    born: float = field(default_factory=time.monotonic)
    state: WorkerState = WorkerState.STARTING
    call: Call | None = None
    sent_at: float = 0.0
    epoch: int = 0
    calls: int = 0
    deadline: float | None = None
    reason: str | None = None
    eof: bool = False

    def stop(self, reason: str | None, now: float, grace: float) -> None:
        """SIGTERM its process group now; SIGKILL follows at the deadline.

        Args:
            reason: The ``restarts`` key to count, or ``None`` to keep the
                one it has.
            now: The current ``time.monotonic()``.
            grace: Seconds between SIGTERM and SIGKILL (``0``: SIGKILL now).
        """
        if reason is not None:
            self.reason = reason
        self.state = WorkerState.STOPPING
        if grace > 0:
            signal_group(self.pid, signal.SIGTERM)
            self.deadline = now + grace
        else:
            self.kill()

    def kill(self) -> None:
        """SIGKILL its process group (no more deadline)."""
        signal_group(self.pid, _SIGKILL)
        self.deadline = None


def signal_group(pid: int, signum: int, *, group_only: bool = False) -> None:
    """Send ``signum`` to the process group led by ``pid``, or to ``pid``.

    A worker makes its own group first thing; until it has, or where
    process groups do not exist, the signal goes to the process alone
    (unless ``group_only``: for a worker already gone, whose pid may be
    free again).
    The group keeps its id reserved while the worker is unreaped or any
    member lives, so the signal cannot reach a stranger's group (the only
    exception, a pid reused between the worker's end and this call, needs
    the pid space to wrap around in that instant).
    """
    if pid <= 0:
        return
    if hasattr(os, "killpg"):
        try:
            os.killpg(pid, signum)
            return
        except ProcessLookupError:  # no such group (yet, or any more)
            pass
        except PermissionError:  # not ours: never signal it
            return
    if group_only:
        return
    try:
        os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def start_worker(
    context: BaseContext, config: ChildConfig, name: str, fork_end: bool
) -> Worker:
    """Start one worker process with a pipe of its own.

    Args:
        context: The multiprocessing context to start it with.
        config: What the worker needs (initializer, recycling limits).
        name: The process's name.
        fork_end: Hand the parent's end to the child so it can close it
            (needed with ``fork``, whose child inherits every descriptor).

    Raises:
        Exception: Whatever starting the process raises (an initializer
            that cannot be pickled, no more processes, ...).
    """
    ctx: Any = context
    parent_conn, child_conn = ctx.Pipe(duplex=True)
    process: BaseProcess = ctx.Process(
        target=worker_main,
        args=(child_conn, parent_conn if fork_end else None, config),
        name=name,
    )
    try:
        process.start()
    except BaseException:
        parent_conn.close()
        raise
    finally:
        child_conn.close()
    return Worker(process, parent_conn, process.pid or 0)
