"""The background worker: a target called back to back in a pool thread (private).

A worker calls its *target* (the ``fn`` it was given, or its own ``run``
method) over and over until it is stopped or the target returns ``False``.
The kinds differ only in what each run waits for:

* :class:`BackgroundWorker` -- nothing; the loop occupies a thread of the
  supervisor's pool and calls a sync target back to back;
* :class:`~.async_worker.BackgroundAsyncWorker` -- nothing, but the loop
  is a coroutine on an aloop; an async target is awaited there, a sync one
  runs in the pool;
* :class:`~.workers.BackgroundIntervalWorker`,
  :class:`~.workers.BackgroundQueueWorker` and
  :class:`~.workers.BackgroundEventWorker` -- a timer, an item on a queue,
  or a trigger.

Every wait is on an asyncio primitive or a future, so a put or a trigger
from another thread reaches the target within one loop wake-up; neotasker's
``poll_delay`` is kept as an attribute and never slept on.

The target receives the keyword arguments given to :meth:`start`, plus
``_worker`` (the worker), ``_name`` and ``o`` as in neotasker; ``start``
pops the options meant for the worker itself (``_priority``, ``_loop``,
``_interval`` ...) before that.  An exception
from the target goes to ``on_error(**on_error_kwargs)`` (called inside the
``except`` block) and the worker goes on; without ``on_error`` it is logged
and the worker stops.

A worker needs only the supervisor core (its pool, loops and registry); a
worker made without ``supervisor=`` takes the global ``task_supervisor``
from :mod:`.default`, so no worker module imports leasing.
"""

from __future__ import annotations

import concurrent.futures
import inspect
import itertools
import logging
import numbers
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from .._util.failures import FailureLog, raised_in
from ..backends.process import is_process_pool
from ..types import Stats, WaitArg
from .core import SupervisorCore
from .default import default_supervisor

__all__ = ["BackgroundWorker"]

logger = logging.getLogger("neoleasepool.workers")

_numbers = itertools.count(1)


class BackgroundWorker:
    """Calls a sync target back to back in a thread of the supervisor's pool.

    Subclass it and override :meth:`run`, or pass ``fn``.  The hooks
    ``before_start``, ``after_start``, ``before_stop``, ``after_stop`` and
    ``send_stop_events`` may be overridden too.

    Args:
        name: The worker's name (and scheduler name); generated if ``None``.
        fn: The target; defaults to :meth:`run`.
        supervisor: The supervisor it registers with; ``task_supervisor``
            by default.
        on_error: Called as ``on_error(**on_error_kwargs)`` when the target
            raises; the worker then keeps going.
        on_error_kwargs: Keyword arguments for ``on_error``.
        o: Any object, passed to the target as ``o``.
        priority: neotasker's "worker thread priority": an integer kept as
            :attr:`priority` and shown in :meth:`stats`.  It orders nothing:
            the supervisor's pool, like neotasker's, has no priorities, and
            Python threads have none.  ``start(_priority=...)`` replaces it.
        poll_delay: Accepted for neotasker compatibility; unused.

    Raises:
        ValueError: If ``priority`` is not an integer.
    """

    def __init__(
        self,
        name: str | None = None,
        fn: Callable[..., Any] | None = None,
        *,
        supervisor: SupervisorCore | None = None,
        on_error: Callable[..., Any] | None = None,
        on_error_kwargs: dict[str, Any] | None = None,
        o: Any = None,
        priority: int | None = None,
        poll_delay: float | None = None,
    ) -> None:
        if fn is not None:
            setattr(self, "run", fn)  # noqa: B010 - shadows the method
        self.name = name or f"{type(self).__name__}_{next(_numbers)}"
        self.supervisor = supervisor if supervisor is not None else default_supervisor()
        self.on_error = on_error
        self.on_error_kwargs = dict(on_error_kwargs or {})
        self.o = o
        #: neotasker's worker priority; recorded, never used to order work.
        self.priority = _check_priority("priority", priority)
        self.poll_delay = self.supervisor.poll_delay if poll_delay is None else poll_delay
        self._lock = threading.RLock()
        self._active = False
        self._started = threading.Event()
        self._stopped = threading.Event()
        self._target_kwargs: dict[str, Any] = {}
        self._target_thread: int | None = None
        self._future: concurrent.futures.Future[Any] | None = None
        self._ready: threading.Event | None = None
        # ``runs`` and ``errors`` are counted by whichever thread runs the
        # target (a pool thread, the aloop). Runs follow one another, but a
        # stop that gives up waiting (or a restart) can leave an old run
        # counting while a new one starts: ``+=`` is never assumed atomic,
        # it is done under ``_counts_lock`` (:meth:`_count`).
        self._counts_lock = threading.Lock()
        self.runs = 0
        self.errors = 0
        #: When the target last started (``time.time()``), or ``None``.
        self.last_run: float | None = None
        #: The target's last errors (type and message, cut short).
        self.failures = FailureLog()
        #: What crashed the worker's own loop (a bug, not its target), if anything.
        self.crash: BaseException | None = None

    def __repr__(self) -> str:
        state = "active" if self._active else ("stopping" if self._started.is_set() else "stopped")
        return f"<{type(self).__name__} {self.name!r} {state} runs={self.runs}>"

    @property
    def _name(self) -> str:
        """neotasker's attribute for the scheduler name."""
        return self.name

    # ------------------------------------------------------------ overrides

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """The target; override it or pass ``fn``.  Return ``False`` to stop.

        Raises:
            TypeError: If neither was done: the worker has nothing to run.
        """
        raise TypeError(
            f"{type(self).__name__} {self.name!r} has no target: pass fn= or override run()"
        )

    def before_start(self) -> None:
        """Hook: called by :meth:`start` before the loop starts."""

    def after_start(self) -> None:
        """Hook: called by :meth:`start` once the loop runs."""

    def before_stop(self) -> None:
        """Hook: called by :meth:`stop` before anything else."""

    def send_stop_events(self) -> None:
        """Hook: wake the loop so that it sees the stop."""

    def after_stop(self) -> None:
        """Hook: called by :meth:`stop` at the end."""

    # ---------------------------------------------------------------- state

    def is_active(self) -> bool:
        """Whether the worker is started and not asked to stop."""
        return self._active

    def is_started(self) -> bool:
        """Whether the worker's loop is running."""
        return self._started.is_set()

    def is_stopped(self) -> bool:
        """Whether the worker's loop has exited (``False`` before a start)."""
        return self._stopped.is_set()

    def stats(self) -> Stats:
        """A JSON-serialisable snapshot of the worker; ``state`` is
        ``running``, ``stopped``, or ``broken`` once its own loop crashed."""
        state = "running" if self._active else ("broken" if self.crash else "stopped")
        return {
            "name": self.name,
            "state": state,
            "kind": type(self).__name__,
            "active": self._active,
            "started": self._started.is_set(),
            "runs": self.runs,
            "errors": self.errors,
            "last_run": self.last_run,
            "priority": self.priority,
        }

    # -------------------------------------------------------- start and stop

    def start(self, **kwargs: Any) -> bool:
        """Start the worker; ``kwargs`` are passed to every target call.

        Returns once the loop runs, so ``put_threadsafe`` and
        ``trigger_threadsafe`` work at once.  ``_priority=`` (and, by kind,
        ``_loop=``, ``_interval=``, ``_delay=``, ``_delay_before=``) change
        the worker's own settings and are not passed to the target.

        Returns:
            ``True`` when this call started the worker, ``False`` when it was
            already running (as neotasker's ``start``).

        Raises:
            LeasePoolNotStartedError: If the supervisor is not running.
            TypeError: If the target does not suit the worker kind.
        """
        while True:
            with self._lock:
                if self._active:
                    return False
                self.supervisor.require_active(f"{type(self).__name__}.start()")
                previous = self._winding_down_locked()
                if previous is None:
                    self._start_locked(kwargs)
                    break
                if self._on_own_thread():
                    raise RuntimeError(
                        f"worker {self.name!r} cannot be started again from its own "
                        f"target while its loop still runs; return False to stop it, "
                        f"then start it from another thread"
                    )
            # A loop still winding down (after stop(wait=False)) may need the
            # lock to finish, e.g. a target calling stop(): wait without it.
            concurrent.futures.wait([previous])
        logger.debug("worker started name=%s", self.name)
        return True

    def _start_locked(self, kwargs: dict[str, Any]) -> None:
        self.before_start()
        self._apply_start_options(kwargs)
        target_kwargs = dict(kwargs)
        target_kwargs.setdefault("_worker", self)
        target_kwargs.setdefault("_name", self.name)
        target_kwargs.setdefault("o", self.o)
        self._target_kwargs = target_kwargs
        self._started.clear()
        self._stopped.clear()
        self.crash = None
        self._active = True
        try:
            self._start()
        except BaseException:
            self._active = False
            self._stopped.set()
            self.supervisor.unregister_scheduler(self)
            raise
        self.after_start()

    def _winding_down_locked(self) -> concurrent.futures.Future[Any] | None:
        """The future of a loop that was asked to stop but still runs."""
        previous = self._future
        if previous is None or previous.done() or self._stopped.is_set():
            return None
        return previous

    def _apply_start_options(self, kwargs: dict[str, Any]) -> None:
        """Pop the ``_loop``-style options that configure the worker itself.

        Subclasses pop their own and call this one.
        """
        if "_priority" in kwargs:
            self.priority = _check_priority("_priority", kwargs.pop("_priority"))

    def _start(self) -> None:
        if inspect.iscoroutinefunction(self.run):
            raise TypeError(
                f"BackgroundWorker {self.name!r} runs sync targets; use "
                f"BackgroundAsyncWorker (or @background_worker) for async ones"
            )
        if is_process_pool(self.supervisor.thread_pool):
            raise TypeError(
                f"BackgroundWorker {self.name!r} needs a thread pool, but the "
                f"supervisor's pool is a process pool; use "
                f"BackgroundAsyncWorker, whose sync targets may run in processes"
            )
        self.supervisor.register_sync_scheduler(self)
        self._future = self.supervisor.spawn(self.loop)
        self._wait_ready(self._future, wait=True)

    def _wait_ready(self, future: concurrent.futures.Future[Any], wait: bool) -> None:
        ready = threading.Event()
        self._ready = ready
        future.add_done_callback(lambda _: ready.set())
        if self._started.is_set():
            ready.set()
        if wait:
            ready.wait()
        if future.done() and not future.cancelled() and future.exception() is not None:
            raise RuntimeError(f"worker {self.name!r} failed to start") from future.exception()

    def loop(self) -> None:
        """The worker loop (runs in a pool thread)."""
        self._mark_started()
        try:
            while self._active and self._call_sync(self._target_kwargs):
                pass
        except Exception as exc:
            self._crashed(exc)  # logged there, once; the loop ends normally
        finally:
            self._loop_exited()

    def _call_sync(self, kwargs: dict[str, Any], *args: Any) -> bool:
        """One sync target call, with error handling; ``False`` means stop."""
        self._target_thread = threading.get_ident()
        self._count_run()
        try:
            return self.run(*args, **kwargs) is not False
        except Exception:
            return self._target_failed()
        finally:
            self._target_thread = None

    def _target_failed(self) -> bool:
        """Handle the exception being raised; whether the worker goes on."""
        with self._counts_lock:
            self.errors += 1
        error = sys.exc_info()[1]
        if error is not None:
            self.failures.record(raised_in(error), error)
        if self.on_error is None:
            logger.exception("worker target failed, stopping name=%s", self.name)
            return False
        try:
            self.on_error(**self.on_error_kwargs)
        except Exception:
            logger.exception("worker on_error failed name=%s", self.name)
        return True

    def _count_run(self) -> None:
        """One more run of the target (any thread)."""
        with self._counts_lock:
            self.runs += 1
            self.last_run = time.time()

    def _mark_started(self) -> None:
        self._started.set()
        ready = self._ready
        if ready is not None:
            ready.set()

    def _crashed(self, exc: BaseException) -> None:
        """The worker's own loop raised (a bug in our code, not the
        target's error): it stops, visibly (``stats()["state"]``)."""
        self.crash = exc
        logger.error("worker loop crashed, stopping name=%s", self.name, exc_info=exc)

    def _loop_exited(self) -> None:
        # The loop ended by itself (False, an error, cancellation) or by stop().
        # Runs on the loop's thread while stop() may run on another: the
        # test-and-clear of ``_active`` is made under the lock, as stop()'s.
        with self._lock:
            ended_by_itself = self._active
            self._active = False
        if ended_by_itself:
            self.supervisor.unregister_scheduler(self)
        # Stopped only once unregistered: whoever waits for the stop then
        # finds the worker gone from the supervisor's schedulers.
        self._started.clear()
        self._stopped.set()
        logger.debug("worker loop exited name=%s", self.name)

    def _on_own_thread(self) -> bool:
        """Whether the caller is the worker's loop or its running target."""
        return self._target_thread == threading.get_ident()

    def stop(self, wait: WaitArg = True) -> None:
        """Stop the worker after its current run.

        Args:
            wait: ``True`` waits for the loop to finish; seconds bound that
                wait, after which an async loop is cancelled; ``False``
                returns at once.  A call from the worker's own target never
                waits.  The wait is made without the worker's lock, so the
                target may call :meth:`stop` meanwhile; a second caller
                waits for the same loop.
        """
        with self._lock:
            stopping, run = self._active, self._future
            if stopping:
                self.before_stop()
                self._active = False
                self.send_stop_events()
            elif wait is False or self._winding_down_locked() is None:
                return
        # Wait without the lock: the target may call stop() (or anything
        # else that takes the lock) before its loop sees the stop.
        if wait is not False and run is not None and not self._on_own_thread():
            timeout = None if wait is True else float(wait)
            done, _ = concurrent.futures.wait([run], timeout)
            if not done:
                self._give_up_waiting()
        if not stopping:
            return  # another stop() is stopping it; we only waited
        with self._lock:
            if not self._active:  # not started again meanwhile
                self.supervisor.unregister_scheduler(self)
        self.after_stop()
        logger.debug("worker stopped name=%s", self.name)

    def _give_up_waiting(self) -> None:
        logger.warning("worker did not stop in time name=%s", self.name)

    def wait_until_stop(self, timeout: float | None = None) -> bool:
        """Block until the worker's loop has exited (neotasker's method).

        Returns at once if the worker was never started.  Never call it from
        the worker's own target, which the loop is waiting for.

        Returns:
            Whether the loop has exited (``False`` only after ``timeout``).
        """
        if self._future is None:
            return True
        return self._stopped.wait(timeout)

    def restart(self, **kwargs: Any) -> bool:
        """Stop (waiting), then start with new target ``kwargs``.

        Returns:
            What :meth:`start` returns.
        """
        self.stop(wait=True)
        return self.start(**kwargs)


def _check_priority(name: str, value: Any) -> int | None:
    """``None`` or an integer priority; anything else is a ``ValueError``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer (a worker priority), got {value!r}")
    return int(value)
