"""The supervisor's async job schedulers, by name (neotasker's async jobs API).

:class:`AsyncJobHost` sits between :class:`~.registry.SchedulerHost` and
the core (see the package docstring).  It keeps the async job schedulers
by name, and the default one, and offers neotasker's methods:
``create_async_job_scheduler``, ``create_async_job`` and
``cancel_async_job``.  A scheduler registers with the supervisor when it
starts, so the supervisor's one ordered stop covers it; the core calls
:meth:`AsyncJobHost._forget_async_job_schedulers` at the end of the
scheduler step, which also ends the jobs of schedulers never started.
The dict and the default are read and written under the registry lock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from ..loops.aloop import ALoop
from .aloops import RESERVED_ALOOP_NAME
from .job_scheduler import AsyncJobScheduler
from .jobs import AsyncJob
from .registry import SchedulerHost

__all__ = ["AsyncJobHost"]

logger = logging.getLogger("neoleasepool.supervisor")


class AsyncJobHost(SchedulerHost):
    """The scheduler registry plus named async job schedulers.

    Args:
        id: See :class:`~.aloops.ALoopHost`.
        supervisor_id: neotasker's name for ``id``.
    """

    def __init__(self, id: str | None = None, *, supervisor_id: str | None = None) -> None:
        super().__init__(id, supervisor_id=supervisor_id)
        #: The async job schedulers by name, in creation order.
        self.async_job_schedulers: dict[str, AsyncJobScheduler] = {}
        #: The scheduler of ``create_async_job(scheduler=None)``, if any.
        self.default_async_job_scheduler: AsyncJobScheduler | None = None

    def create_async_job_scheduler(
        self,
        name: str,
        aloop: ALoop | str | None = None,
        start: bool = True,
        default: bool = False,
    ) -> AsyncJobScheduler:
        """Create a scheduler of async jobs on an aloop.

        Args:
            name: Unique among async job schedulers.
            aloop: The aloop (or its name) whose loop runs the jobs; by
                default the default aloop, else the supervisor's own loop.
            start: Start it now; otherwise jobs wait for its ``start()``.
            default: Make it the scheduler of ``create_async_job()``.

        Returns:
            The scheduler.

        Raises:
            ValueError: If ``name`` is empty, reserved or taken (neotasker
                logs an error and returns ``False``), or ``aloop`` unknown.
            LeasePoolNotStartedError: If ``start`` and the supervisor is
                not running.
            RuntimeError: If the supervisor is stopping.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"async job scheduler name must be a non-empty string, got {name!r}")
        if name == RESERVED_ALOOP_NAME:
            raise ValueError(f"the name {RESERVED_ALOOP_NAME!r} is reserved; choose another")
        scheduler = AsyncJobScheduler(name, self, aloop=aloop)
        with self._lock:
            if self._stopping:
                raise RuntimeError(
                    f"TaskSupervisor {self.id!r} is stopping; create async job "
                    f"schedulers after start()"
                )
            if name in self.async_job_schedulers:
                raise ValueError(
                    f"an async job scheduler named {name!r} already exists; use "
                    f"task_supervisor.async_job_schedulers[{name!r}]"
                )
            self.async_job_schedulers[name] = scheduler
            previous_default = self.default_async_job_scheduler
            if default:
                self.default_async_job_scheduler = scheduler
        if start:
            try:
                scheduler.start()
            except BaseException:
                with self._lock:
                    del self.async_job_schedulers[name]
                    if default:
                        self.default_async_job_scheduler = previous_default
                raise
        return scheduler

    def set_default_async_job_scheduler(self, scheduler: AsyncJobScheduler | str | None) -> None:
        """Make ``scheduler`` (or the one of that name) the default."""
        resolved = self._job_scheduler(scheduler) if scheduler is not None else None
        with self._lock:
            self.default_async_job_scheduler = resolved

    def create_async_job(
        self,
        scheduler: AsyncJobScheduler | str | None = None,
        *,
        target: Callable[..., Any],
        args: Any = (),
        kwargs: Mapping[str, Any] | None = None,
        interval: float | None = None,
        timer: float = 0,
        number: int = 0,
        name: str | None = None,
        overlap: bool = True,
    ) -> AsyncJob:
        """Run ``await target(*args, **kwargs)`` every ``interval`` seconds.

        Safe from any thread.  The job's arguments are those of
        :class:`~neoleasepool.supervision.jobs.AsyncJob`.

        Args:
            scheduler: The scheduler or its name; the default one if ``None``.
            target: An async function.
            args: Positional arguments for every call.
            kwargs: Keyword arguments for every call.
            interval: Seconds between run starts.
            timer: Seconds before the first run (0: at once).
            number: How many runs, then the job ends; 0 for no limit.
            name: The job's name in stats and logs.
            overlap: Whether a run may start while the previous one runs.

        Returns:
            The job: ``job.cancel()``, ``job.active``, ``job.stats()``.

        Raises:
            ValueError: If there is no such scheduler, or an option is invalid.
            TypeError: If ``target`` is not an async function.
            LeasePoolNotStartedError: If the scheduler is stopped.
        """
        return self._job_scheduler(scheduler).create_threadsafe(
            target,
            args=args,
            kwargs=kwargs,
            interval=interval,
            timer=timer,
            number=number,
            name=name,
            overlap=overlap,
        )

    def cancel_async_job(
        self, scheduler: AsyncJobScheduler | str | None = None, job: AsyncJob | None = None
    ) -> bool:
        """Cancel ``job``: no new run starts; a run in progress finishes.

        ``scheduler`` is accepted for neotasker's signature; the job knows
        its own scheduler.

        Returns:
            Whether this call cancelled it (``False`` if it had ended).

        Raises:
            TypeError: If ``job`` is not an async job.
        """
        if not isinstance(job, AsyncJob):
            raise TypeError(
                f"cancel_async_job() needs job=<the job create_async_job() returned>, got {job!r}"
            )
        return job.cancel()

    def _job_scheduler(self, spec: AsyncJobScheduler | str | None) -> AsyncJobScheduler:
        if isinstance(spec, AsyncJobScheduler):
            return spec
        with self._lock:
            if spec is None:
                if self.default_async_job_scheduler is None:
                    raise ValueError(
                        f"supervisor {self.id!r} has no default async job scheduler: "
                        f"create one with create_async_job_scheduler(name, default=True) "
                        f"or pass scheduler="
                    )
                return self.default_async_job_scheduler
            if spec not in self.async_job_schedulers:
                raise ValueError(
                    f"supervisor {self.id!r} has no async job scheduler named {spec!r}; "
                    f"create it with create_async_job_scheduler({spec!r})"
                )
            return self.async_job_schedulers[spec]

    def _forget_async_job_schedulers(self) -> None:
        """At stop: end every scheduler's jobs and forget the schedulers.

        The started ones were stopped with the other schedulers (or their
        loops cancelled); this ends the jobs of those never started.
        """
        with self._lock:
            schedulers = list(self.async_job_schedulers.values())
            self.async_job_schedulers.clear()
            self.default_async_job_scheduler = None
        for scheduler in schedulers:
            try:
                scheduler.stop(wait=False)
            except Exception:
                logger.exception(
                    "supervisor: async job scheduler failed to stop id=%s scheduler=%s",
                    self.id,
                    scheduler.id,
                )
