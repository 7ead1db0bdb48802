"""The async job scheduler: many small interval coroutines on one aloop (private).

An :class:`AsyncJobScheduler` runs :class:`~.jobs.AsyncJob`\\ s, neotasker's
"async jobs", on one aloop.  It is a scheduler in the supervisor's sense
(an async ``loop()`` and a regular ``stop(wait)``), registered when it
starts, so the supervisor stops it with the other schedulers, newest
first, before the aloops it runs on.

Nothing polls.  Each job is one timer handle on the loop
(``loop.call_at``): asyncio's own heap of timers decides which job is due
next, so idle jobs cost nothing.  When a handle fires, the run starts as a
task and the handle for the next run is set.  ``loop()`` itself only waits
on one event, the stop.

Threads and who writes what:

* any thread: ``create_threadsafe``, ``cancel`` and ``stop`` change the
  scheduler's state and its dict of jobs under ``_lock``, then post the
  rest to the loop with ``call_soon_threadsafe``;
* the loop thread: arming and firing timers, starting runs, and the sets
  ``_armed`` and ``_tasks``, which no other thread touches.

Why nothing is armed twice or left armed: a job leaves ``pending`` (under
the lock) exactly once, in :meth:`AsyncJobScheduler._arm`, and only while
the scheduler runs.  A cancel marks the job under the lock first and then
posts the disarm; a stop marks every job and then posts its request.  The
loop runs posted callbacks in order, so an arm posted before a stop runs
before it, and the stop disarms it; an arm posted after finds the job no
longer pending and does nothing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._util.deadlines import deadline_from_wait, seconds_left
from ..exceptions import LeasePoolNotStartedError, WrongLoopError
from ..loops.aloop import CANCEL_GRACE_SECONDS, ALoop
from ..types import Stats, WaitArg
from .jobs import BROKEN, CANCELLED, FINISHED, PENDING, SCHEDULED, AsyncJob
from .schedulers import LoopSpec

if TYPE_CHECKING:
    from .registry import SchedulerHost

__all__ = ["AsyncJobScheduler"]

logger = logging.getLogger("neoleasepool.jobs")

#: Scheduler states; ``created`` and ``stopped`` may start (again).
CREATED, RUNNING, STOPPING, STOPPED = "created", "running", "stopping", "stopped"


class AsyncJobScheduler:
    """Runs async jobs on an aloop; create it with
    :meth:`TaskSupervisor.create_async_job_scheduler`.

    Args:
        name: The scheduler's name (``id``, as aiosched calls it); it is
            registered with the supervisor as ``async_job_scheduler_<name>``.
        supervisor: The supervisor that runs and stops it.
        aloop: The aloop (an :class:`ALoop` or its name); by default the
            supervisor's default aloop, else its own loop.
    """

    #: ``stop()`` also takes ``cancel_tasks`` (see the scheduler protocol).
    accepts_cancel_tasks = True

    def __init__(self, name: str, supervisor: SchedulerHost, aloop: LoopSpec = None) -> None:
        self.id = name
        self._name = f"async_job_scheduler_{name}"
        self.supervisor = supervisor
        #: The aloop it runs on (as given until it starts, then the ALoop).
        self.aloop: LoopSpec = aloop
        self._lock = threading.RLock()
        self._state = CREATED
        self._jobs: dict[str, AsyncJob] = {}  # active jobs, under _lock
        self._running_on: ALoop | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._future: concurrent.futures.Future[Any] | None = None
        self._stop_event: asyncio.Event | None = None
        self._stop_request: tuple[float | None, bool] = (None, False)
        self._armed: dict[str, AsyncJob] = {}  # loop thread only
        self._tasks: set[asyncio.Task[None]] = set()  # loop thread only
        self._created = self._finished = self._cancelled = self._broken = 0

    def __repr__(self) -> str:
        return (
            f"<AsyncJobScheduler {self.id!r} {self._state} jobs={len(self._jobs)} "
            f"running={len(self._tasks)}>"
        )

    @property
    def active(self) -> bool:
        """Whether the scheduler runs (started and not stopping)."""
        return self._state == RUNNING

    # -------------------------------------------------------- start and stop

    def start(self) -> bool:
        """Start the scheduler on its aloop; jobs created before run now.

        Returns:
            ``True`` when this call started it, ``False`` if it was running.

        Raises:
            LeasePoolNotStartedError: If the supervisor (or the aloop) is
                not running, or the scheduler is still stopping.
            ValueError: If its aloop does not exist.
        """
        with self._lock:
            if self._state == RUNNING:
                return False
            if self._state == STOPPING:
                raise LeasePoolNotStartedError(
                    f"async job scheduler {self.id!r} is still stopping; "
                    f"wait for stop() to return before starting it again"
                )
            aloop = self.supervisor.resolve_aloop(self.aloop)
            loop = aloop.get_loop()
            if loop is None:
                raise LeasePoolNotStartedError(
                    f"aloop {aloop.name!r} of async job scheduler {self.id!r} is "
                    f"not running: start it first"
                )
            self.aloop, self._running_on, self._loop = aloop, aloop, loop
            self._stop_event = asyncio.Event()
            self._stop_request = (None, False)
            self._state = RUNNING
            try:
                self._future = self.supervisor.register_scheduler(self)
            except BaseException:
                self._state = CREATED
                raise
            loop.call_soon_threadsafe(self._arm_all, list(self._jobs.values()))
        logger.debug("async job scheduler started name=%s", self.id)
        return True

    def stop(self, wait: WaitArg = True, cancel_tasks: bool = False) -> None:
        """Cancel every job, then let the runs in progress finish.

        Args:
            wait: ``True`` waits for the runs in progress without limit;
                seconds bound that wait, then the runs left are cancelled;
                ``False`` asks for the stop and returns.  A call from the
                scheduler's own loop never waits.
            cancel_tasks: Cancel the runs in progress at once.

        Raises:
            ValueError: If ``wait`` is a negative or non-finite number.
        """
        deadline = deadline_from_wait(wait)
        with self._lock:
            state, future, loop = self._state, self._future, self._loop
            if state in (CREATED, STOPPED):
                self._cancel_all_locked()
                return
            if state == RUNNING:
                self._state = STOPPING
                self._cancel_all_locked()
                assert loop is not None
                _post(loop, self._request_stop, deadline, cancel_tasks)
        if wait is False or future is None or self._on_loop_thread():
            return
        left = seconds_left(deadline)
        done, _ = concurrent.futures.wait(
            [future], None if left is None else left + CANCEL_GRACE_SECONDS
        )
        if not done:
            logger.warning("async job scheduler did not stop in time name=%s", self.id)

    async def loop(self) -> None:
        """The scheduler's coroutine: wait for the stop, then end the runs."""
        event = self._stop_event
        assert event is not None
        try:
            await event.wait()
            deadline, cancel = self._stop_request
            await self._end_runs(deadline, cancel)
        finally:
            self._closed()

    def _request_stop(self, deadline: float | None, cancel: bool) -> None:
        """On the loop: disarm every job and wake :meth:`loop`."""
        self._disarm_all()
        self._stop_request = (deadline, cancel)
        assert self._stop_event is not None
        self._stop_event.set()

    async def _end_runs(self, deadline: float | None, cancel: bool) -> None:
        """Wait for the runs in progress until ``deadline``, then cancel the rest."""
        if self._tasks and not cancel:
            await asyncio.wait(set(self._tasks), timeout=seconds_left(deadline))
        left = set(self._tasks)
        if left:
            logger.warning(
                "async job scheduler cancels runs name=%s runs=%s", self.id, len(left)
            )
            for task in left:
                task.cancel()
            await asyncio.wait(left, timeout=CANCEL_GRACE_SECONDS)

    def _closed(self) -> None:
        """On the loop, however :meth:`loop` ended (a stop, or its task cancelled)."""
        self._disarm_all()
        for task in set(self._tasks):
            task.cancel()  # only when loop() itself was cancelled: see _end_runs
        with self._lock:
            self._cancel_all_locked()
            self._state = STOPPED
        self.supervisor.unregister_scheduler(self)
        logger.debug("async job scheduler stopped name=%s", self.id)

    def _on_loop_thread(self) -> bool:
        return self._running_on is not None and self._running_on.in_loop_thread()

    # ----------------------------------------------------------------- jobs

    def create_threadsafe(self, target: Callable[..., Any], **options: Any) -> AsyncJob:
        """Create a job and put it on the timetable; safe from any thread.

        Args:
            target: An async function.
            **options: ``args``, ``kwargs``, ``interval``, ``timer``,
                ``number``, ``name``, ``overlap`` (see :class:`AsyncJob`).

        Returns:
            The job; ``job.cancel()`` or :meth:`cancel` takes it off.

        Raises:
            LeasePoolNotStartedError: If the scheduler is stopping or stopped.
            TypeError, ValueError: If an option is invalid.
        """
        job = AsyncJob(self, target, **options)
        with self._lock:
            if self._state in (STOPPING, STOPPED):
                raise LeasePoolNotStartedError(
                    f"async job scheduler {self.id!r} is {self._state}: start() it "
                    f"again before creating jobs"
                )
            self._jobs[job.id] = job
            self._created += 1
            if self._state == RUNNING:
                assert self._loop is not None
                _post(self._loop, self._arm, job)
        return job

    async def create(self, target: Callable[..., Any], **options: Any) -> AsyncJob:
        """:meth:`create_threadsafe` for code on the scheduler's own loop.

        Raises:
            WrongLoopError: If awaited on another loop.
        """
        if asyncio.get_running_loop() is not self._loop:
            raise WrongLoopError(
                "AsyncJobScheduler.create() must be awaited on the scheduler's own "
                "loop; from other threads or loops use create_threadsafe()"
            )
        return self.create_threadsafe(target, **options)

    def cancel(self, job: AsyncJob) -> bool:
        """Take ``job`` off the timetable; a run in progress finishes.

        Returns:
            Whether this call cancelled it (``False`` if it had ended).

        Raises:
            ValueError: If ``job`` belongs to another scheduler.
        """
        if job.scheduler is not self:
            raise ValueError(
                f"job {job.name!r} belongs to async job scheduler "
                f"{job.scheduler.id!r}, not {self.id!r}; use job.cancel()"
            )
        with self._lock:
            if not job.active:
                return False
            self._end_locked(job, CANCELLED)
            loop = self._loop if self._state == RUNNING else None
        if loop is not None:
            _post(loop, self._disarm, job)
        return True

    def jobs(self) -> list[AsyncJob]:
        """The jobs that will run again, in creation order."""
        with self._lock:
            return list(self._jobs.values())

    def _end_locked(self, job: AsyncJob, state: str) -> None:
        job.state = state
        self._jobs.pop(job.id, None)
        if state == CANCELLED:
            self._cancelled += 1
        elif state == BROKEN:
            self._broken += 1
        else:
            self._finished += 1

    def _cancel_all_locked(self) -> None:
        for job in list(self._jobs.values()):
            self._end_locked(job, CANCELLED)

    # -------------------------------------------------- the timers (loop thread)

    def _arm_all(self, jobs: list[AsyncJob]) -> None:
        for job in jobs:
            self._arm(job)

    def _arm(self, job: AsyncJob) -> None:
        try:
            self._arm_now(job)
        except Exception as exc:
            self._job_broke(job, exc)

    def _job_broke(self, job: AsyncJob, exc: BaseException) -> None:
        """On the loop: a job's timer failed (a bug): end it as ``broken``."""
        self._disarm(job)
        with self._lock:
            if job.state in (PENDING, SCHEDULED):
                job.last_error = type(exc).__name__
                self._end_locked(job, BROKEN)
        logger.error(
            "async job timer failed, job ended scheduler=%s job=%s", self.id, job.name,
            exc_info=exc,
        )

    def _arm_now(self, job: AsyncJob) -> None:
        with self._lock:
            if job.state != PENDING or self._state != RUNNING:
                return
            job.state = SCHEDULED
        loop = asyncio.get_running_loop()
        job._handle = loop.call_at(job.first_due(loop.time()), self._fire, job)
        self._armed[job.id] = job

    def _disarm(self, job: AsyncJob) -> None:
        self._armed.pop(job.id, None)
        if job._handle is not None:
            job._handle.cancel()
            job._handle = None

    def _disarm_all(self) -> None:
        for job in list(self._armed.values()):
            self._disarm(job)

    def _fire(self, job: AsyncJob) -> None:
        """A job's timer fired: start its run, and set the timer for the next."""
        try:
            self._fire_now(job)
        except Exception as exc:
            self._job_broke(job, exc)

    def _fire_now(self, job: AsyncJob) -> None:
        job._handle = None
        if job.state != SCHEDULED:
            self._armed.pop(job.id, None)
            return
        loop = asyncio.get_running_loop()
        if job.overlap or not job.running:
            more = job.count_start()
            self._start_run(loop, job)
        else:
            job.skipped += 1
            more = True
        if not more:  # it finishes when its last run ends (see _start_run)
            job.exhausted = True
            self._armed.pop(job.id, None)
            return
        job._handle = loop.call_at(job.next_due(loop.time()), self._fire, job)

    def _start_run(self, loop: asyncio.AbstractEventLoop, job: AsyncJob) -> None:
        task = loop.create_task(self._run(job), name=f"async_job_{self.id}_{job.name}")
        self._tasks.add(task)

        def _ended(done: asyncio.Task[None]) -> None:
            # A done-callback runs even for a task cancelled before it began.
            self._tasks.discard(done)
            job.running -= 1
            if job.exhausted and not job.running:
                with self._lock:
                    if job.state == SCHEDULED:
                        self._end_locked(job, FINISHED)

        task.add_done_callback(_ended)

    async def _run(self, job: AsyncJob) -> None:
        try:
            await job.target(*job.args, **job.kwargs)
        except Exception as exc:
            job.errors += 1
            job.last_error = type(exc).__name__
            logger.error(
                "async job failed scheduler=%s job=%s", self.id, job.name, exc_info=True
            )

    # ----------------------------------------------------------- observation

    def stats(self) -> Stats:
        """A JSON-serialisable snapshot: state, counts and every live job."""
        aloop = self._running_on
        with self._lock:  # the counts change under it too: one consistent snapshot
            jobs = [job.stats() for job in self._jobs.values()]
            state = self._state
            counts = {
                "jobs_created": self._created,
                "jobs_finished": self._finished,
                "jobs_cancelled": self._cancelled,
                "jobs_broken": self._broken,
            }
        return {
            "name": self.id,
            "state": state,
            "aloop": aloop.name if aloop is not None else None,
            # The loop's own set, sized from another thread: for display only.
            "running": len(self._tasks),
            **counts,
            "jobs": jobs,
        }


def _post(loop: asyncio.AbstractEventLoop, fn: Callable[..., object], *args: Any) -> None:
    """``fn(*args)`` on ``loop`` soon; nothing if the loop has closed.

    A plain ``call_soon_threadsafe``, not the aloop's ``call_soon``: a stop
    must still reach the scheduler while its aloop drains (no longer
    accepting new work, but running the tasks it has).
    """
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:
        pass  # the loop is closed: its tasks, and with them the timers, are gone
