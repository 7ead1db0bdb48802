"""WorkerPool: a process pool that controls each of its workers.

``concurrent.futures.ProcessPoolExecutor`` shares one call queue between
its workers, so the parent cannot tell which worker holds which call: one
worker that dies breaks the whole pool, a running call cannot be stopped,
and ``max_tasks_per_child`` can hang (gh-115634). Here every worker is an
OS process with its own duplex pipe, gets one call at a time and only
when idle, and the parent always knows what each worker holds. So one
call can time out, be cancelled while it runs, or die with its worker,
and only that call fails; its worker is replaced.

How the threads share the work::

    submit*() (any thread)              manager thread (one per pool)
    ----------------------              ---------------------------------------
    pickle (fn, args, kwargs)           wait([wake, worker pipes, sentinels],
      (an error fails the future)            timeout=nearest deadline)
    lock:                               read results         (no lock)
      refuse if shut down / broken      reap exited workers  (no lock)
      pending.append(call)  ---------> lock:
      wake (one byte, unless one          take the wake byte
            is already pending)           stop timed-out / cancelled / killed
                                          pop pending -> idle workers, mark sent
    future.cancel() (any thread)          publish figures for stats()
      base cancel, notify waiters       send calls / EXIT    (no lock)
      once, then wake -----------------> resolve futures     (no lock: callbacks)
                                        start workers        (no lock)

Who writes what. Submitting threads append to ``pending`` and set flags
(``shutdown``, ``kill_epoch``), always under the lock. The manager thread
alone pops ``pending``, and alone owns the workers, their pipes and their
records (``workers.py``); it publishes figures under the lock.

Why nothing is lost. A submit appends under the lock, then wakes the
manager unless a wake is pending; the manager takes the wake byte under
the same lock *before* it looks at ``pending``, so an append it does not
see has written a new byte and the next wait returns at once. A cancel
changes the future's state first and wakes second, so the pass that
follows sees it. A worker that dies holding a call is reaped through its
sentinel, and the call it holds (recorded when it was sent, before any
byte went out) fails with :class:`~neoleasepool.WorkerDiedError`.

Why nothing runs twice. A call leaves ``pending`` once, popped by the
manager, and goes to one worker, which runs one call at a time. It is
only ever put back when its pipe was closed before the worker could read
it whole (so it never started). A result that arrives for a call whose
future already ended (timed out, cancelled, killed) is dropped; its worker
is being stopped anyway.

Futures are resolved, and their done-callbacks run, on the manager thread
with no lock held (as in ``ProcessPoolExecutor``): a callback may submit,
cancel, or call ``shutdown()``, which then does not wait for this thread.
"""

from __future__ import annotations

import concurrent.futures
import threading
import weakref
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.context import BaseContext
from typing import Any, ParamSpec, TypeVar

from ..._util.limits import function_name
from ..._util.validation import check_duration, check_positive_int
from ..process_logging import safe_mp_context
from .futures import Call, CallFuture
from .manager import Manager
from .protocol import CALL, ChildConfig, dump
from .shared import Shared

__all__ = ["WorkerPool"]

P = ParamSpec("P")
T = TypeVar("T")


class WorkerPool(concurrent.futures.Executor):
    """A process pool whose calls can time out, be cancelled while they
    run, and die alone.

    Workers start on demand, up to ``max_workers``: one whenever a call
    waits and no worker is idle or starting. A worker that ends (it died,
    was stopped, or retired) is replaced the same way, once it is gone and
    only if work waits; an idle pool keeps the workers it has.

    Args:
        max_workers: The most worker processes at once (those being
            stopped included).
        mp_context: A multiprocessing context; ``None`` means
            ``forkserver`` where available, else ``spawn``.
        initializer: Called in each worker before its first call
            (replacements too). If it raises, or a worker dies before it is
            ready (by its own doing, or killed from outside three starts
            in a row), the pool is *broken*: queued and later calls fail
            with :class:`~concurrent.futures.process.BrokenProcessPool`.
        initargs: Arguments for ``initializer``.
        max_tasks_per_child: Replace a worker after this many calls.
        max_memory_per_child: Replace a worker after a call that left it
            larger than this many bytes (resident set size; see
            :func:`~.child.resident_bytes` for other systems than Linux).
        max_child_age_seconds: Replace a worker older than this, after its
            call (or before giving it one).
        kill_grace_seconds: When a worker is stopped, seconds between
            SIGTERM and SIGKILL to its process group (``0``: SIGKILL at once).
        name: Names the manager thread and the worker processes.

    Raises:
        ValueError: An argument is out of range or of the wrong kind.
    """

    def __init__(
        self,
        max_workers: int,
        *,
        mp_context: BaseContext | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        max_tasks_per_child: int | None = None,
        max_memory_per_child: int | None = None,
        max_child_age_seconds: float | None = None,
        kill_grace_seconds: float = 1.0,
        name: str = "neoleasepool-process",
    ) -> None:
        self._max_workers = check_positive_int("max_workers", max_workers)
        context, config, grace = _checked(
            mp_context, initializer, initargs, max_tasks_per_child, max_memory_per_child,
            max_child_age_seconds, kill_grace_seconds, name,
        )
        self._name = name
        self._shared = Shared()
        self._manager = Manager(
            self._shared,
            context,
            config,
            max_workers=self._max_workers,
            kill_grace=grace,
            name=name,
        )
        self._thread_started = False
        # A pool dropped without shutdown() still drains and stops.
        weakref.finalize(self, _request_shutdown, self._shared).atexit = False

    @staticmethod
    def check_options(**options: Any) -> None:
        """Check the keyword arguments a pool would get, without starting
        anything (a manager checks its executor options at construction).

        Raises:
            ValueError: As the constructor would.
            TypeError: An unknown option.
        """
        _checked(**options)

    def __repr__(self) -> str:
        stats = self.stats()
        state = " broken" if stats["broken"] else ""
        state += " shutdown" if self._shared.shutdown else ""
        return (
            f"<WorkerPool workers={stats['workers']} busy={stats['busy']} "
            f"pending={stats['pending']}{state}>"
        )

    # ----------------------------------------------------------- submit

    def submit(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> concurrent.futures.Future[T]:
        """Run ``fn(*args, **kwargs)`` in a worker, without a time limit.

        Returns:
            A future; cancelling it stops the call even while it runs. If
            the call cannot be pickled, the future has failed already.

        Raises:
            RuntimeError: After :meth:`shutdown`.
            BrokenProcessPool: The pool is broken.
        """
        return self._submit(fn, args, kwargs, None, None, None)

    def submit_limited(
        self,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        timeout: float | None = None,
        soft_timeout: float | None = None,
        name: str | None = None,
    ) -> concurrent.futures.Future[T]:
        """Run ``fn(*args, **kwargs)`` in a worker, with time limits.

        Both limits count from when the call is sent to its worker (time in
        the queue does not count).

        Args:
            fn: The function (it must pickle).
            args: Its positional arguments.
            kwargs: Its keyword arguments.
            timeout: Hard limit in seconds: the future fails with
                :class:`~neoleasepool.ItemTimeoutError` and the worker is
                stopped (SIGTERM, then SIGKILL) and replaced.
            soft_timeout: Soft limit in seconds: raises
                :class:`~neoleasepool.SoftTimeLimitExceeded` inside the
                function (POSIX; elsewhere only ``current_item()`` sees it).
            name: Names the call in errors; default: ``fn``'s name.

        Raises:
            ValueError: A limit is not a finite number > 0, or ``name`` is
                not a string.
            RuntimeError: After :meth:`shutdown`.
            BrokenProcessPool: The pool is broken.
        """
        if timeout is not None:
            timeout = check_duration("timeout", timeout)
        if soft_timeout is not None:
            soft_timeout = check_duration("soft_timeout", soft_timeout)
            if timeout is not None and soft_timeout >= timeout:
                raise ValueError(
                    f"soft_timeout must be below timeout: got soft_timeout={soft_timeout}, "
                    f"timeout={timeout}"
                )
        if name is not None and not isinstance(name, str):
            raise ValueError(f"name must be a string or None: got {name!r}")
        return self._submit(fn, tuple(args), dict(kwargs), timeout, soft_timeout, name)

    def _submit(
        self,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
        soft_timeout: float | None,
        name: str | None,
    ) -> concurrent.futures.Future[T]:
        shared = self._shared
        with shared.lock:
            self._check_open_locked()
        label = function_name(fn) if name is None else name
        future: CallFuture[T] = CallFuture(shared.wake)
        try:
            frame = dump(CALL, (label, timeout, soft_timeout, fn, args, kwargs))
        except Exception as exc:  # this call cannot travel: it alone fails
            future.set_exception(exc)
            return future
        call = Call(future, frame, label, timeout)
        with shared.lock:
            self._check_open_locked()
            shared.pending.append(call)
            shared.wake_locked()
            if not self._thread_started:
                self._thread_started = True
                self._manager.thread.start()
        return future

    def _check_open_locked(self) -> None:
        if self._shared.shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")
        if self._shared.broken is not None:
            raise BrokenProcessPool(self._shared.broken)

    # ------------------------------------------------------- control

    def kill_workers(self, *, cancel_pending: bool = False) -> None:
        """Stop every busy worker now; their calls fail with
        :class:`~neoleasepool.WorkerDiedError`.

        Returns at once: the manager thread fails the calls and stops the
        workers (SIGTERM, then SIGKILL after the grace) moments later.
        Calls sent after this call are not touched. Queued calls go on (on
        replacement workers), or with ``cancel_pending`` are cancelled in
        the same step, so that none reaches a worker freed by the kill (a
        revoked lease uses this).
        """
        shared = self._shared
        with shared.lock:
            shared.kill_epoch += 1
            cancelled = list(shared.pending) if cancel_pending else []
            if cancel_pending:
                shared.pending.clear()
            shared.wake_locked()
        for call in cancelled:  # outside the lock: callbacks run here
            call.future.cancel()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Refuse new calls, finish (or cancel) the queued ones, and stop.

        Idle workers are told to exit as soon as no call waits; busy ones
        after their call. Safe to call more than once, and from a done-
        callback (it then does not wait for the thread running it).

        Args:
            wait: Return only once every worker process and the manager
                thread are joined. A later ``shutdown(wait=True)`` still
                waits after a ``shutdown(wait=False)``.
            cancel_futures: Cancel the calls still queued instead of
                running them.
        """
        shared = self._shared
        with shared.lock:
            shared.shutdown = True
            cancelled = list(shared.pending) if cancel_futures else []
            if cancel_futures:
                shared.pending.clear()
            if self._thread_started:
                shared.wake_locked()
            elif not shared.closed:
                shared.close_locked()  # no manager thread to close it
        for call in cancelled:  # outside the lock: callbacks run here
            call.future.cancel()
        thread = self._manager.thread
        if wait and self._thread_started and thread is not threading.current_thread():
            thread.join()

    # --------------------------------------------------------- figures

    @property
    def broken(self) -> bool:
        """Whether the pool is broken (an initializer failed, or workers
        died before they were ready) and takes no more calls."""
        return self._shared.broken is not None

    def stats(self) -> dict[str, Any]:
        """A snapshot of the pool, as plain JSON-serialisable data.

        Returns:
            ``workers`` (live worker processes, in any state), ``busy``,
            ``idle``, ``starting``, ``stopping`` (being stopped or
            exiting), ``pending`` (calls not yet sent to a worker),
            ``calls_done`` (calls that came back with an outcome),
            ``restarts`` (workers gone, by reason: ``died``, ``timeout``,
            ``cancelled``, ``killed``, ``max_tasks``, ``max_memory``,
            ``max_age``), ``max_workers`` and ``broken``.
        """
        shared = self._shared
        with shared.lock:
            figures = dict(shared.figures)
            figures["restarts"] = dict(figures["restarts"])
            figures["pending"] = sum(1 for c in shared.pending if not c.future.cancelled())
            figures["broken"] = shared.broken is not None
        figures["max_workers"] = self._max_workers
        return figures


def _checked(
    mp_context: BaseContext | None = None,
    initializer: Callable[..., object] | None = None,
    initargs: Any = (),
    max_tasks_per_child: int | None = None,
    max_memory_per_child: int | None = None,
    max_child_age_seconds: float | None = None,
    kill_grace_seconds: float = 1.0,
    name: str = "neoleasepool-process",
) -> tuple[BaseContext, ChildConfig, float]:
    """The pool's options, checked: its context, its workers' settings and
    the kill grace.

    Raises:
        ValueError: An option is out of range or of the wrong kind.
    """
    context = safe_mp_context() if mp_context is None else mp_context
    if not (hasattr(context, "Process") and hasattr(context, "Pipe")):
        raise ValueError(
            f"mp_context must be a multiprocessing context (such as "
            f"multiprocessing.get_context('spawn')) or None: got {mp_context!r}"
        )
    if initializer is not None and not callable(initializer):
        raise ValueError(f"initializer must be callable or None: got {initializer!r}")
    try:
        initargs = tuple(initargs)
    except TypeError:
        raise ValueError(f"initargs must be a tuple: got {initargs!r}") from None
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string: got {name!r}")
    config = ChildConfig(
        initializer,
        initargs,
        _optional(check_positive_int, "max_tasks_per_child", max_tasks_per_child),
        _optional(check_positive_int, "max_memory_per_child", max_memory_per_child),
        _optional(check_duration, "max_child_age_seconds", max_child_age_seconds),
    )
    grace = check_duration("kill_grace_seconds", kill_grace_seconds, allow_zero=True)
    return context, config, grace


def _optional(check: Callable[[str, Any], Any], name: str, value: Any) -> Any:
    return None if value is None else check(name, value)


def _request_shutdown(shared: Shared) -> None:
    """The pool was garbage-collected: drain and stop (without waiting)."""
    with shared.lock:
        shared.shutdown = True
        shared.wake_locked()

