"""The manager thread of a :class:`~.pool.WorkerPool`: it owns every worker.

One pass of :meth:`Manager.run`'s loop waits for anything to happen (a
wake from another thread, a message from a worker, a worker's exit, or
the nearest deadline), then: reads what the workers sent, reaps the
workers that exited, stops workers whose call timed out, was cancelled or
was killed, sends queued calls to idle workers, starts workers for calls
that wait, and finally resolves the futures. ``pool.py`` draws how this
thread and the submitting threads share the pool's state.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import wait
from multiprocessing.context import BaseContext
from typing import Any

from ...exceptions import ItemTimeoutError, WorkerDiedError
from .exit_hook import RUNNING
from .futures import Call
from .ledger import Ledger
from .protocol import (
    EXIT,
    INIT_FAILED,
    READY,
    RESULT,
    RETIRE_REASONS,
    ChildConfig,
    RemoteTraceback,
    load,
)
from .shared import Shared
from .workers import Worker, WorkerState, signal_group, start_worker

__all__ = ["EXIT_GRACE_SECONDS", "STARTUP_KILLS_TOLERATED", "Manager"]

logger = logging.getLogger(__name__)

#: How long a worker told to exit (or retiring) may take before it is stopped.
EXIT_GRACE_SECONDS = 5.0

#: Workers killed from outside before they were ready, in a row, that are
#: replaced; the next one breaks the pool (a loop of OOM kills, say).
STARTUP_KILLS_TOLERATED = 2

_SIGKILL: int = getattr(signal, "SIGKILL", signal.SIGTERM)
_OUTSIDE_KILLS = {-_SIGKILL, -signal.SIGTERM}

STARTING, IDLE, BUSY = WorkerState.STARTING, WorkerState.IDLE, WorkerState.BUSY
STOPPING, EXITING = WorkerState.STOPPING, WorkerState.EXITING


class Manager:
    """Runs one pool's workers from one thread (see the module docstring).

    Args:
        shared: The state shared with the pool's public face.
        context: The multiprocessing context workers start with.
        config: What each worker needs (initializer, recycling limits).
        max_workers: At most this many worker processes, in any state.
        kill_grace: Seconds from SIGTERM to SIGKILL when stopping a worker.
        name: The pool's name (its processes are ``"<name>-<n>"``).
    """

    def __init__(
        self,
        shared: Shared,
        context: BaseContext,
        config: ChildConfig,
        *,
        max_workers: int,
        kill_grace: float,
        name: str,
    ) -> None:
        self.shared = shared
        self._context = context
        self._config = config
        self._max_workers = max_workers
        self._grace = kill_grace
        self._name = name
        # With fork the child inherits the parent's end of its own pipe and
        # must close it, or it would never see the parent go away.
        self._fork_end = context.get_start_method() == "fork"
        self._workers: list[Worker] = []
        self._started = 0
        self._ledger = Ledger()
        self._startup_kills = 0  # workers killed before ready since one was
        self._break: tuple[str, str | None] | None = None  # (message, traceback)
        self._waitables: dict[Any, tuple[str, Worker | None]] | None = None
        self.thread = threading.Thread(target=self.run, name=f"{name}-manager", daemon=True)

    # ------------------------------------------------------------ the loop

    def run(self) -> None:
        """The thread's body: loop until shut down (or broken) and empty."""
        RUNNING.add(self)
        try:
            while self._step():
                pass
        except BaseException as exc:  # a bug here must not hang the callers
            logger.exception("worker pool manager failed pool=%s", self._name)
            self._abandon(exc)
        finally:
            with self.shared.lock:
                self.shared.close_locked()
            RUNNING.discard(self)

    def _step(self) -> bool:
        """One pass; ``False`` once the pool is finished."""
        waitables = self._waitable_map()
        ready = wait(list(waitables), self._wait_timeout())
        woke = False
        exited: list[Worker] = []
        for obj in ready:
            kind, worker = waitables[obj]
            if worker is None:
                woke = True
            elif kind == "conn":
                self._receive(worker)
            else:
                exited.append(worker)
        for worker in exited:  # after the reads: a last result comes first
            self._reap(worker)
        now = time.monotonic()
        shared = self.shared
        with shared.lock:
            if woke:
                shared.consume_wake_locked()
            self._apply_break_locked()
            self._check_busy(now, shared.kill_epoch)
            sends, starts = self._dispatch_locked(now)
            self._ledger.publish_locked(shared.figures, self._workers)
            finished = (
                (shared.shutdown or shared.broken is not None)
                and not shared.pending
                and not self._workers
            )
        self._send(sends)
        self._ledger.resolve()
        if starts:
            self._start(starts)
        return not finished

    def _waitable_map(self) -> dict[Any, tuple[str, Worker | None]]:
        if self._waitables is None:
            waitables: dict[Any, tuple[str, Worker | None]] = {
                self.shared.wake_reader: ("wake", None)
            }
            for worker in self._workers:
                if not worker.eof:
                    waitables[worker.conn] = ("conn", worker)
                waitables[worker.process.sentinel] = ("exit", worker)
            self._waitables = waitables
        return self._waitables

    def _wait_timeout(self) -> float | None:
        if self._break is not None:
            return 0.0
        deadlines = [w.deadline for w in self._workers if w.deadline is not None]
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - time.monotonic())

    # ------------------------------------------------- what workers send

    def _receive(self, worker: Worker) -> None:
        try:
            frame = worker.conn.recv_bytes()
        except (EOFError, OSError):  # it is exiting; its sentinel follows
            worker.eof = True
            self._waitables = None
            return
        self._on_frame(worker, frame)

    def _on_frame(self, worker: Worker, frame: bytes) -> None:
        kind = frame[:1]
        if kind == RESULT:
            self._on_result(worker, frame)
        elif kind == READY:
            if worker.state is STARTING:
                worker.state = IDLE
                self._startup_kills = 0
        elif kind == INIT_FAILED and worker.state is STARTING:
            text, trace = load(frame)
            self._break = (f"a worker's initializer failed: {text}", trace)
            self._expect_exit(worker, None, time.monotonic())

    def _on_result(self, worker: Worker, frame: bytes) -> None:
        call = worker.call
        if worker.state is not BUSY or call is None:
            return  # its call already ended (timed out, cancelled, killed)
        now = time.monotonic()
        worker.call = None
        self._ledger.calls_done += 1
        retire = RETIRE_REASONS[frame[1]]
        if retire is None:
            worker.state = IDLE
            worker.deadline = None
        else:
            self._expect_exit(worker, retire, now)
        try:
            ok, value, trace = load(frame, 2)
        except Exception as exc:  # fails this call only
            ok, value, trace = False, TypeError(
                f"the outcome of {call.name}() could not be unpickled: {exc!r}"
            ), None
        if not ok and trace and isinstance(value, BaseException):
            value.__cause__ = RemoteTraceback(trace)
        self._ledger.give(call.future, ok, value)

    def _expect_exit(self, worker: Worker, reason: str | None, now: float) -> None:
        worker.state = EXITING
        worker.reason = reason
        worker.deadline = now + EXIT_GRACE_SECONDS

    # ------------------------------------------------------------ exits

    def _reap(self, worker: Worker) -> None:
        """The worker's process exited: read its last words, kill what it
        left in its process group, join it, and settle its call."""
        if not worker.eof:
            try:
                while worker.conn.poll():
                    self._on_frame(worker, worker.conn.recv_bytes())
            except (EOFError, OSError):
                pass
        if worker.state in (BUSY, STOPPING):
            # Grandchildren that ignored SIGTERM. The worker is not joined
            # yet, so its pid (and group id) cannot have been reused.
            signal_group(worker.pid, _SIGKILL, group_only=True)
        process = worker.process
        process.join()
        code = process.exitcode
        process.close()
        worker.conn.close()
        self._workers.remove(worker)
        self._waitables = None
        state, call = worker.state, worker.call
        if state is BUSY and call is not None:
            self._ledger.restarts["died"] += 1
            self._ledger.fail(call.future, WorkerDiedError(
                f"worker process pid={worker.pid} died (exit code {code}) while "
                f"running {call.name}(); it was replaced"
            ))
        elif state is IDLE:
            self._ledger.restarts["died"] += 1
        elif state is STARTING:
            self._died_starting(worker, code)
        elif worker.reason is not None:
            self._ledger.restarts[worker.reason] += 1
        logger.debug(
            "worker exited pool=%s pid=%s code=%s state=%s reason=%s",
            self._name, worker.pid, code, state.value, worker.reason,
        )

    def _died_starting(self, worker: Worker, code: int | None) -> None:
        """A worker died before it was ready. Killed from outside (SIGKILL,
        SIGTERM: a person, a supervisor, the OOM killer), it is replaced,
        unless that happened to the last few starts in a row; dead by its
        own doing (it exited, crashed, or its initializer ended it), it
        would die again: the pool breaks rather than respawn forever."""
        if code in _OUTSIDE_KILLS and self._startup_kills < STARTUP_KILLS_TOLERATED:
            self._startup_kills += 1
            self._ledger.restarts["died"] += 1
            return
        self._break = (
            f"a worker process (pid={worker.pid}) died (exit code {code}) before "
            "it was ready: in its start-up or its initializer",
            None,
        )

    # ----------------------------------------- stops, sends and starts

    def _check_busy(self, now: float, kill_epoch: int) -> None:
        """Stop workers whose call was cancelled, killed or timed out;
        escalate stops and overdue exits whose deadline passed."""
        for worker in self._workers:
            deadline_passed = worker.deadline is not None and now >= worker.deadline
            if worker.state is BUSY and worker.call is not None:
                call = worker.call
                if call.future.cancelled():
                    self._stop(worker, "cancelled", now)
                elif worker.epoch < kill_epoch:
                    self._ledger.fail(call.future, WorkerDiedError(
                        f"worker process pid={worker.pid} was stopped by kill_workers() "
                        f"while running {call.name}()"
                    ))
                    self._stop(worker, "killed", now)
                elif deadline_passed and call.timeout is not None:
                    elapsed = now - worker.sent_at
                    self._ledger.fail(call.future, ItemTimeoutError(
                        call.name, call.timeout, elapsed, "its worker was stopped"
                    ))
                    self._stop(worker, "timeout", now)
            elif worker.state is STOPPING and deadline_passed:
                worker.kill()
            elif worker.state is EXITING and deadline_passed:
                worker.stop(None, now, self._grace)

    def _stop(self, worker: Worker, reason: str, now: float) -> None:
        worker.stop(reason, now, self._grace)
        worker.call = None
        logger.debug("stopping worker pool=%s pid=%s reason=%s", self._name, worker.pid, reason)

    def _dispatch_locked(self, now: float) -> tuple[list[tuple[Worker, Any]], int]:
        """Give queued calls to idle workers; tell workers to exit once no
        work is left after a shutdown; count the workers to start."""
        shared = self.shared
        pending = shared.pending
        max_age = self._config.max_age
        sends: list[tuple[Worker, Any]] = []
        for worker in self._workers:
            shared.drop_cancelled_locked()
            if worker.state is not IDLE or not pending:
                continue
            if max_age is not None and worker.calls and now - worker.born > max_age:
                # Too old for another call. (One that never ran a call is
                # kept: a slow start-up must not retire every worker.)
                self._expect_exit(worker, "max_age", now)
                sends.append((worker, EXIT))
                continue
            call = pending.popleft()
            worker.state = BUSY
            worker.calls += 1
            worker.call = call
            worker.sent_at = now
            worker.epoch = shared.kill_epoch
            worker.deadline = None if call.timeout is None else now + call.timeout
            call.future.sent = True
            sends.append((worker, call))
        shared.drop_cancelled_locked()
        if not pending and (shared.shutdown or shared.broken is not None):
            for worker in self._workers:
                if worker.state in (IDLE, STARTING):
                    self._expect_exit(worker, None, now)
                    sends.append((worker, EXIT))
        if shared.broken is not None or not pending:
            return sends, 0
        starting = sum(1 for w in self._workers if w.state is STARTING)
        room = self._max_workers - len(self._workers)
        return sends, max(0, min(room, len(pending) - starting))

    def _send(self, sends: list[tuple[Worker, Any]]) -> None:
        for worker, what in sends:
            frame = what.frame if isinstance(what, Call) else what
            try:
                worker.conn.send_bytes(frame)
            except OSError:
                self._lost_send(worker, what)

    def _lost_send(self, worker: Worker, what: Any) -> None:
        """The worker's pipe is closed: it is gone. A call it never got
        goes back to the front of the queue (it cannot have started it:
        a worker runs only a call it read whole)."""
        if isinstance(what, Call) and worker.call is what:
            worker.call = None
            worker.state = IDLE  # it does not hold the call any more
            with self.shared.lock:
                what.future.sent = False
                self.shared.pending.appendleft(what)
        if worker.state is not EXITING:
            worker.stop("died", time.monotonic(), self._grace)

    def _start(self, count: int) -> None:
        for _ in range(count):
            self._started += 1
            try:
                worker = start_worker(
                    self._context, self._config, f"{self._name}-{self._started}", self._fork_end
                )
            except Exception as exc:
                logger.exception("could not start a worker pool=%s", self._name)
                self._break = (f"a worker process could not be started: {exc!r}", None)
                return
            self._workers.append(worker)
            self._waitables = None
            logger.debug("started worker pool=%s pid=%s", self._name, worker.pid)
        with self.shared.lock:
            self._ledger.publish_locked(self.shared.figures, self._workers)

    # ------------------------------------------------ figures and futures

    def _apply_break_locked(self) -> None:
        """Break the pool (once): every queued call fails, no worker starts."""
        if self._break is None:
            return
        message, trace = self._break
        self._break = None
        shared = self.shared
        if shared.broken is not None or (shared.shutdown and not shared.pending):
            return  # already broken, or nothing more to do anyway
        shared.broken = f"WorkerPool {self._name!r} is broken: {message}"
        logger.warning("worker pool broken pool=%s reason=%s", self._name, message)
        while shared.pending:
            call = shared.pending.popleft()
            error = BrokenProcessPool(shared.broken)
            if trace:
                error.__cause__ = RemoteTraceback(trace)
            self._ledger.fail(call.future, error)

    def _abandon(self, exc: BaseException) -> None:
        """The loop failed: kill every worker, fail every call, break."""
        message = f"WorkerPool {self._name!r} is broken: its manager thread failed: {exc!r}"
        with self.shared.lock:
            if self.shared.broken is None:
                self.shared.broken = message
            pending = list(self.shared.pending)
            self.shared.pending.clear()
        for call in pending:
            self._ledger.fail(call.future, BrokenProcessPool(message))
        for worker in self._workers:
            worker.kill()
            if worker.call is not None:
                self._ledger.fail(worker.call.future, BrokenProcessPool(message))
        for worker in self._workers:
            worker.process.join()
            worker.conn.close()
        self._workers.clear()
        self._ledger.resolve()
