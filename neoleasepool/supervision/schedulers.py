"""The supervisor's registry of schedulers (private).

A scheduler is anything with an async ``loop()`` and a regular
``stop(wait=True)``, where ``wait`` is ``True``, ``False`` or seconds:
background workers, and the lease managers and grinders of the sync
facades.  The registry keeps them in registration order, so that a stop can
walk them newest first (a grinder stops before the manager it leases from),
and it passes them ``wait`` only, since a third-party ``stop`` may take
nothing else.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import logging
import threading
from dataclasses import dataclass
from typing import Any

from .._util.deadlines import remaining
from ..types import Stats, WaitArg

__all__ = ["Registration", "SchedulerRegistry", "scheduler_name"]

logger = logging.getLogger("neoleasepool.supervisor")

_numbers = itertools.count(1)


def scheduler_name(scheduler: Any) -> str:
    """A scheduler's name: its ``name`` or ``_name`` string, else a new one."""
    for attr in ("name", "_name"):
        value = getattr(scheduler, attr, None)
        if isinstance(value, str) and value:
            return value
    return f"{type(scheduler).__name__}_{next(_numbers)}"


@dataclass
class Registration:
    """One registered scheduler and the future of its ``loop()``, if async."""

    scheduler: Any
    name: str
    is_async: bool
    future: concurrent.futures.Future[Any] | None = None


def _owned(scheduler: Any) -> bool:
    """Whether the supervisor stops ``scheduler`` even without ``stop_schedulers``."""
    return getattr(scheduler, "stopped_with_supervisor", False) is True


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

    def add(self, scheduler: Any, *, is_async: bool) -> Registration:
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

    def watch(self, entry: Registration, future: concurrent.futures.Future[Any]) -> None:
        """Remember the future of ``entry``'s ``loop()`` and log if it fails."""
        entry.future = future
        future.add_done_callback(lambda done: self._log_failure(entry.name, done))

    def _log_failure(self, name: str, future: concurrent.futures.Future[Any]) -> None:
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

    def remove(self, scheduler: Any) -> None:
        """Forget ``scheduler``; nothing happens if it is not registered."""
        with self._lock:
            for name, entry in list(self._entries.items()):
                if entry.scheduler is scheduler:
                    del self._entries[name]

    def schedulers(self) -> dict[str, Any]:
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
        behind) are stopped.
        """
        with self._lock:
            entries = list(reversed(self._entries.values()))
        for entry in entries:
            if owned_only and not _owned(entry.scheduler):
                continue
            scheduler_wait = wait if isinstance(wait, bool) else remaining(deadline)
            try:
                if getattr(entry.scheduler, "accepts_cancel_tasks", False) is True:
                    entry.scheduler.stop(wait=scheduler_wait, cancel_tasks=cancel_tasks)
                else:
                    entry.scheduler.stop(wait=scheduler_wait)
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
            elif stop_sync and not entry.is_async and not _owned(entry.scheduler):
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
