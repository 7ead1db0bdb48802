"""An async job: a coroutine function that a job scheduler runs on an interval (private).

neotasker calls these "async jobs" (its docs, ``doc/async_jobs.rst``; the
jobs themselves came from the ``aiosched`` package): lighter than a
background worker, a job is only a target, its arguments and a timetable.
:class:`AsyncJob` holds one job's settings, checked when it is created,
and what it has done so far; :mod:`.job_scheduler` runs it.

The timetable, in the scheduler loop's clock:

* the first run is due ``timer`` seconds after the job is armed (at once
  when ``timer`` is 0); ``interval`` defaults to ``timer`` when only the
  timer is given, as in aiosched;
* after that, runs are due at a fixed rate, every ``interval`` seconds
  from the first;
* a due time that passed while the loop was busy is not made up with a
  burst of runs: the timetable moves on to its next tick in the future,
  and the ticks missed are counted as ``skipped``;
* with ``number=N`` the job ends after its N-th run has started;
* with ``overlap=False`` a run that comes due while the previous one still
  runs is skipped (and counted); by default runs may overlap, as in
  neotasker, where a job is never checked for a run still in progress.

Who writes what: the settings never change.  ``state`` moves under the
scheduler's lock (a cancel may come from any thread); the timer handle,
the due time and the counters are written only on the scheduler's loop
thread.  :meth:`AsyncJob.stats` reads them from anywhere: a snapshot that
may be one run behind, never a torn value.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from .._util.validation import check_duration, check_positive_int
from ..types import Stats

__all__ = ["MIN_INTERVAL", "AsyncJob", "JobOwner"]

#: Shorter intervals are raised to this, as aiosched does (seconds).
MIN_INTERVAL = 0.001

#: Job states: waiting for its scheduler's loop, on the timetable, or ended.
PENDING, SCHEDULED, FINISHED, CANCELLED = "pending", "scheduled", "finished", "cancelled"
#: A job whose timer failed (a bug in the scheduler, not in the job's
#: target): it ends, logged, and the scheduler goes on with the others.
BROKEN = "broken"


class JobOwner(Protocol):
    """What a job knows of its scheduler (which imports this module)."""

    id: str

    def cancel(self, job: AsyncJob) -> bool: ...


class AsyncJob:
    """One async job: ``await target(*args, **kwargs)`` every ``interval`` seconds.

    Created by :meth:`TaskSupervisor.create_async_job` or a scheduler's
    ``create_threadsafe``; never built directly.

    Args:
        scheduler: The scheduler that runs it.
        target: An async function (a coroutine function, or an object whose
            ``__call__`` is one).
        args: Positional arguments for every call.
        kwargs: Keyword arguments for every call.
        interval: Seconds between run starts (at least ``MIN_INTERVAL``).
        timer: Seconds before the first run; 0 runs it at once.
        number: How many runs, then the job ends; 0 for no limit.
        name: A name for stats and logs; the target's name by default.
        overlap: Whether a run may start while the previous one still runs.

    Raises:
        TypeError: If ``target`` is not an async function, ``args`` not a
            sequence or ``kwargs`` not a mapping.
        ValueError: If a number is out of range, or neither ``interval``
            nor ``timer`` gives the job a period.
    """

    def __init__(
        self,
        scheduler: JobOwner,
        target: Callable[..., Any],
        *,
        args: Any = (),
        kwargs: Mapping[str, Any] | None = None,
        interval: float | None = None,
        timer: float = 0,
        number: int = 0,
        name: str | None = None,
        overlap: bool = True,
    ) -> None:
        _check_target(target)
        if isinstance(args, str | bytes) or not isinstance(args, tuple | list):
            raise TypeError(f"args must be a tuple of positional arguments, got {args!r}")
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise TypeError(f"kwargs must be a dict of keyword arguments, got {kwargs!r}")
        self.scheduler = scheduler
        self.target = target
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.timer = check_duration("timer", timer, allow_zero=True)
        self.interval = _period(interval, self.timer)
        self.number = check_positive_int("number", number, minimum=0)
        self.overlap = bool(overlap)
        #: A unique id (a UUID string, as aiosched's jobs have).
        self.id = str(uuid.uuid4())
        self.name = name or getattr(target, "__name__", None) or self.id
        self.state = PENDING
        self.runs = 0
        self.errors = 0
        self.skipped = 0
        self.running = 0
        self.last_run: float | None = None
        self.last_error: str | None = None
        self._left = self.number
        #: Its last run has started: it finishes once no run of it is left.
        self.exhausted = False
        self._due: float | None = None
        self._handle: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return (
            f"<AsyncJob {self.name!r} {self.state} every {self.interval:g}s "
            f"runs={self.runs} errors={self.errors}>"
        )

    @property
    def active(self) -> bool:
        """Whether the job will run again or still runs (not cancelled, not
        finished: a job of ``number`` runs finishes when its last run ends)."""
        return self.state in (PENDING, SCHEDULED)

    def cancel(self) -> bool:
        """Take the job off its scheduler's timetable; thread-safe.

        A run in progress finishes; no new run starts.

        Returns:
            Whether this call cancelled it (``False`` if it had ended).
        """
        return self.scheduler.cancel(self)

    def stats(self) -> Stats:
        """A JSON-serialisable snapshot of the job."""
        due = self._due
        loop_time = time.monotonic()  # the clock of asyncio's default loops
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "interval": self.interval,
            "number": self.number,
            "overlap": self.overlap,
            "runs": self.runs,
            "errors": self.errors,
            "skipped": self.skipped,
            "running": self.running,
            "last_run": self.last_run,
            "last_error": self.last_error,
            "next_run_in": (
                None if due is None or not self.active else round(max(due - loop_time, 0.0), 6)
            ),
        }

    # ------------------------------------------- the timetable (loop thread)

    def first_due(self, now: float) -> float:
        """The due time of the first run, for a job armed at ``now``."""
        self._due = now + self.timer
        return self._due

    def next_due(self, now: float) -> float:
        """The due time of the run after the one due at ``self._due``.

        Ticks that already passed at ``now`` are skipped and counted.
        """
        assert self._due is not None
        due = self._due + self.interval
        if due <= now:
            missed = math.floor((now - due) / self.interval) + 1
            self.skipped += missed
            due += missed * self.interval
        self._due = due
        return due

    def count_start(self) -> bool:
        """Count one run as started; whether the job has runs left after it."""
        self.runs += 1
        self.running += 1
        self.last_run = time.time()
        if self._left:
            self._left -= 1
            return self._left > 0
        return True


def _check_target(target: Any) -> None:
    if not callable(target):
        raise TypeError(f"target must be an async function, got {target!r}")
    call = getattr(target, "__call__", None)  # noqa: B004 - a callable object
    if not (inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(call)):
        raise TypeError(
            f"target must be an async function (async def), got {target!r}; "
            f"for a plain function use a BackgroundIntervalWorker, which runs "
            f"it in the supervisor's pool"
        )


def _period(interval: Any, timer: float) -> float:
    """``interval`` checked, else ``timer``; raised to ``MIN_INTERVAL``."""
    if interval is None:
        if timer <= 0:
            raise ValueError(
                "an async job needs interval= (seconds between runs) or "
                "timer= (seconds before the first run, and between runs)"
            )
        return max(timer, MIN_INTERVAL)
    return max(check_duration("interval", interval), MIN_INTERVAL)
