"""The registry of schedulers, and the supervisor's scheduler API.

:class:`SchedulerRegistry` keeps registered schedulers by name, in
registration order, so that a stop can walk them newest first (a grinder
stops before the manager it leases from).  :class:`SchedulerHost` is the
second of the supervisor's parts (see the package docstring): it adds the
registry, and the methods that register schedulers and run their loops,
to the loops of :class:`~.aloops.ALoopHost`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from dataclasses import dataclass
from typing import Any

from .._util.deadlines import deadline_from_wait, remaining
from ..loops.aloop import ALoop
from ..types import Stats, WaitArg
from .aloops import ALoopHost
from .schedulers import (
    AsyncScheduler,
    Scheduler,
    scheduler_loop,
    scheduler_name,
    stopped_with_supervisor,
    takes_cancel_tasks,
)

__all__ = ["Registration", "SchedulerHost", "SchedulerRegistry"]

logger = logging.getLogger("neoleasepool.supervisor")


@dataclass
class Registration:
    """One registered scheduler and the future of its ``loop()``, if async."""

    scheduler: Scheduler
    name: str
    is_async: bool
    future: concurrent.futures.Future[object] | None = None
    aloop: ALoop | None = None  # the aloop its loop() runs on, if one does


class SchedulerRegistry:
    """Registered schedulers by name, in registration order.

    Args:
        owner: The supervisor id, for messages and log lines.
    """

    def __init__(self, owner: str) -> None:
        self._owner = owner
        self._lock = threading.RLock()
        self._entries: dict[str, Registration] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, scheduler: Scheduler, *, is_async: bool) -> Registration:
        """Register ``scheduler`` under its name.

        Raises:
            ValueError: If another scheduler already has that name.
        """
        name = scheduler_name(scheduler)
        with self._lock:
            if name in self._entries:
                raise ValueError(
                    f"a scheduler named {name!r} is already registered with "
                    f"supervisor {self._owner!r}; give each scheduler its own name"
                )
            entry = Registration(scheduler, name, is_async)
            self._entries[name] = entry
        return entry

    def watch(self, entry: Registration, future: concurrent.futures.Future[object]) -> None:
        """Remember the future of ``entry``'s ``loop()`` and log if it fails."""
        with self._lock:  # stop_all() reads it under the lock, from another thread
            entry.future = future
        future.add_done_callback(lambda done: self._log_failure(entry.name, done))

    def _log_failure(self, name: str, future: concurrent.futures.Future[object]) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            logger.error(
                "supervisor: scheduler loop failed id=%s scheduler=%s",
                self._owner,
                name,
                exc_info=exc,
            )

    def remove(self, scheduler: Scheduler) -> bool:
        """Forget ``scheduler``; whether it was registered."""
        found = False
        with self._lock:
            for name, entry in list(self._entries.items()):
                if entry.scheduler is scheduler:
                    del self._entries[name]
                    found = True
        return found

    def schedulers(self) -> dict[str, Scheduler]:
        """The schedulers by name, in registration order."""
        with self._lock:
            return {name: entry.scheduler for name, entry in self._entries.items()}

    def stop_all(
        self,
        wait: WaitArg,
        deadline: float | None,
        cancel_tasks: bool = False,
        *,
        owned_only: bool = False,
        on_aloop: ALoop | None = None,
    ) -> None:
        """Call every scheduler's ``stop(wait=...)``, newest first.

        A number of seconds is passed as what is left of it before
        ``deadline``.  Schedulers that declare ``accepts_cancel_tasks``
        (neoleasepool's own facades) also get ``cancel_tasks``; third-party
        ones get ``wait`` only.  A ``stop`` that raises is logged; the others
        still run.

        With ``owned_only`` only the schedulers that declare
        ``stopped_with_supervisor`` (the supervised lease managers and
        grinders, whose pools and tasks the supervisor must not leave
        behind) are stopped; with ``on_aloop`` only those whose loop runs
        on that aloop.
        """
        with self._lock:
            entries = list(reversed(self._entries.values()))
        for entry in entries:
            scheduler = entry.scheduler
            if owned_only and not stopped_with_supervisor(scheduler):
                continue
            if on_aloop is not None and entry.aloop is not on_aloop:
                continue
            scheduler_wait = wait if isinstance(wait, bool) else remaining(deadline)
            try:
                if takes_cancel_tasks(scheduler):
                    scheduler.stop(wait=scheduler_wait, cancel_tasks=cancel_tasks)
                else:
                    scheduler.stop(wait=scheduler_wait)
            except Exception:
                logger.exception(
                    "supervisor: scheduler failed to stop id=%s scheduler=%s",
                    self._owner,
                    entry.name,
                )

    def clear(self, *, cancel_loops: bool, stop_sync: bool = False) -> None:
        """Forget every scheduler, ending their loops if asked.

        Args:
            cancel_loops: Cancel the loops of the async schedulers.
            stop_sync: Ask the sync schedulers that were not stopped yet to
                ``stop(wait=False)``.  They run by themselves (a
                :class:`~neoleasepool.BackgroundWorker` occupies a pool
                thread that the pool's shutdown joins), so a loop nobody
                stops would never end; this one ends after its current run.
                Owned ones (``stopped_with_supervisor``) were stopped already.
        """
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        for entry in entries:
            if entry.future is not None:
                if cancel_loops:
                    entry.future.cancel()
            elif (
                stop_sync and not entry.is_async and not stopped_with_supervisor(entry.scheduler)
            ):
                try:
                    entry.scheduler.stop(wait=False)
                except Exception:
                    logger.exception(
                        "supervisor: sync scheduler failed to stop id=%s scheduler=%s",
                        self._owner,
                        entry.name,
                    )

    def stats(self) -> list[Stats]:
        """One JSON-serialisable dict per scheduler."""
        with self._lock:
            return [
                {
                    "name": entry.name,
                    "async": entry.is_async,
                    "type": type(entry.scheduler).__name__,
                }
                for entry in self._entries.values()
            ]


class SchedulerHost(ALoopHost):
    """The supervisor's loops plus its registry of schedulers.

    Args:
        id: See :class:`~.aloops.ALoopHost`.
        supervisor_id: neotasker's name for ``id``.
    """

    def __init__(self, id: str | None = None, *, supervisor_id: str | None = None) -> None:
        super().__init__(id, supervisor_id=supervisor_id)
        self._schedulers = SchedulerRegistry(self.id)

    def register_scheduler(self, scheduler: AsyncScheduler) -> concurrent.futures.Future[Any]:
        """Register an async scheduler and run its ``loop()`` coroutine.

        The coroutine runs on the scheduler's own loop when it names one
        (an ``aloop`` attribute holding an :class:`ALoop`, or neotasker's
        ``worker_loop`` holding an ALoop or an asyncio loop), else on the
        supervisor's loop.  At stop the supervisor calls
        ``scheduler.stop(wait=...)`` with ``wait`` only, unless the
        scheduler declares ``accepts_cancel_tasks``.

        Args:
            scheduler: An object with an async ``loop()`` and a regular
                ``stop(wait=True)``; named by ``name``/``_name``.

        Returns:
            The future of the ``loop()`` coroutine.

        Raises:
            LeasePoolNotStartedError: If the supervisor is not running.
            ValueError: If another scheduler has the same name.
        """
        self.require_active("register_scheduler()")
        target = scheduler_loop(scheduler)
        foreign: asyncio.AbstractEventLoop | None = None
        aloop: ALoop | None = None
        if isinstance(target, asyncio.AbstractEventLoop):
            try:
                aloop = self.resolve_aloop(target)
            except ValueError:
                foreign = target
        else:
            aloop = self.resolve_aloop(target)
        entry = self._schedulers.add(scheduler, is_async=True)
        try:
            if foreign is not None:
                future = asyncio.run_coroutine_threadsafe(_run_loop(scheduler), foreign)
            else:
                assert aloop is not None
                entry.aloop = aloop  # before its loop runs: stop_aloop() finds it
                future = aloop.submit(scheduler.loop)
        except BaseException:
            self._schedulers.remove(scheduler)
            raise
        self._schedulers.watch(entry, future)
        return future

    def stop_aloop(self, name: str, wait: WaitArg = True, cancel_tasks: bool = False) -> bool:
        """Stop the aloop called ``name``, and first the schedulers on it.

        A scheduler's ``loop()`` on that aloop (a worker's, a job
        scheduler's) would otherwise keep the aloop's drain waiting forever:
        each is stopped as the supervisor's stop would, newest first, within
        ``wait``.

        Returns:
            ``True``, as neotasker's ``stop_aloop``.

        Raises:
            ValueError: If there is no such aloop.
        """
        aloop = self._named_aloop(name)
        deadline = deadline_from_wait(wait)
        self._schedulers.stop_all(wait, deadline, cancel_tasks, on_aloop=aloop)
        aloop_wait = wait if isinstance(wait, bool) else remaining(deadline)
        return super().stop_aloop(name, wait=aloop_wait, cancel_tasks=cancel_tasks)

    #: neotasker's name for :meth:`register_scheduler`.
    register_async_scheduler = register_scheduler

    def register_sync_scheduler(self, scheduler: Scheduler) -> bool:
        """Register a scheduler that runs by itself; it is only stopped.

        Returns:
            ``True``, as neotasker's method.

        Raises:
            LeasePoolNotStartedError: If the supervisor is not running.
            ValueError: If another scheduler has the same name.
        """
        self.require_active("register_sync_scheduler()")
        self._schedulers.add(scheduler, is_async=False)
        return True

    def unregister_scheduler(self, scheduler: Scheduler) -> bool:
        """Forget ``scheduler``; does nothing if it is not registered.

        Returns:
            Whether it was registered, as neotasker's method.
        """
        return self._schedulers.remove(scheduler)

    #: Sync schedulers live in the same registry.
    unregister_sync_scheduler = unregister_scheduler

    def get_schedulers(self) -> dict[str, Any]:
        """The registered schedulers by name, in registration order.

        Each value is the object that was registered, as it was given.
        """
        return self._schedulers.schedulers()

    def get_scheduler(self, name: str) -> Any:
        """The registered scheduler called ``name``, as it was registered.

        Raises:
            KeyError: If no scheduler has that name.
        """
        schedulers = self._schedulers.schedulers()
        if name not in schedulers:
            raise KeyError(
                f"supervisor {self.id!r} has no scheduler named {name!r}; "
                f"registered: {', '.join(schedulers) or 'none'}"
            )
        return schedulers[name]


async def _run_loop(scheduler: AsyncScheduler) -> object:
    """Await ``scheduler.loop()`` on an asyncio loop that no aloop runs."""
    return await scheduler.loop()
