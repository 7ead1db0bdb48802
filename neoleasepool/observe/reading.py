"""One reading of a supervisor and everything registered with it.

Metrics (:mod:`.families`) and the status page (:mod:`.status`) are both
made from a :class:`Reading`: each part's ``stats()`` snapshot, the
grinders' item timings and everyone's last failures, read once per scrape.
Nothing here is computed ahead of time; gauges are what the parts say at
the moment of reading.

A grinder's ``stats()`` is read on its own loop (one hop to it, which is
why a reading is taken on a plain thread, never on an event loop); the
timings, failures, managers, aloops and workers are read from any thread.
A part that stops between being listed and being read is left out of
this reading.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from .._util.tally import HistogramSnapshot
from .._version import __version__
from ..exceptions import LeasePoolError
from ..supervision.core import SupervisorCore
from ..supervision.job_scheduler import AsyncJobScheduler
from ..supervision.worker_base import BackgroundWorker
from ..sync.grinder import SupervisedWorkGrinder
from ..sync.manager import SupervisedLeaseManager
from ..types import Stats

__all__ = ["GrinderReading", "Reading", "read"]

logger = logging.getLogger("neoleasepool.observe")

#: The longest wait for the grinders' loops to answer a reading (all at once).
HOP_TIMEOUT_SECONDS = 2.0


@dataclass
class GrinderReading:
    """A grinder's snapshot, item timings and last failures."""

    stats: Stats
    timings: dict[str, HistogramSnapshot]
    failures: list[dict[str, Any]]


@dataclass
class Reading:
    """Everything a scrape or the status page shows, read at ``time``."""

    time: float
    version: str
    supervisor: Stats
    own_loop: Stats | None
    managers: list[Stats] = field(default_factory=list)
    grinders: list[GrinderReading] = field(default_factory=list)
    aloops: list[Stats] = field(default_factory=list)
    workers: list[Stats] = field(default_factory=list)
    worker_failures: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    job_schedulers: list[Stats] = field(default_factory=list)


def read(supervisor: SupervisorCore) -> Reading:
    """Read ``supervisor`` and its parts (not on an event loop's thread:
    grinders are read on their loops, all at once, waiting at most
    :data:`HOP_TIMEOUT_SECONDS` in all).

    A grinder whose loop does not answer in time is still in the reading,
    with ``state`` ``"unresponsive"`` and what can be read without its loop
    (its counts, timings and failures): a part in trouble must not vanish
    from the page and the scrape.
    """
    own = supervisor.aloop
    reading = Reading(
        time=time.time(),
        version=__version__,
        supervisor=supervisor.stats(),
        own_loop=own.stats() if own is not None else None,
    )
    reading.aloops = list(reading.supervisor.get("aloops", []))
    reading.job_schedulers = list(reading.supervisor.get("async_job_schedulers", []))
    asked: list[tuple[SupervisedWorkGrinder, concurrent.futures.Future[Stats]]] = []
    for name, scheduler in supervisor.get_schedulers().items():
        try:
            if isinstance(scheduler, SupervisedWorkGrinder):
                asked.append((scheduler, scheduler.stats_later()))
            else:
                _read_scheduler(reading, scheduler)
        except (LeasePoolError, RuntimeError) as exc:
            # Stopped or stopping between the listing and the read.
            logger.debug("scheduler left out of a reading name=%s error=%r", name, exc)
    concurrent.futures.wait([future for _, future in asked], timeout=HOP_TIMEOUT_SECONDS)
    for grinder, future in asked:
        reading.grinders.append(_grinder_reading(grinder, future))
    return reading


def _grinder_reading(
    grinder: SupervisedWorkGrinder, future: concurrent.futures.Future[Stats]
) -> GrinderReading:
    if future.done() and not future.cancelled() and future.exception() is None:
        stats = {"name": grinder.name, "manager": grinder.manager.name, **future.result()}
    else:
        future.cancel()  # its loop never got to it: nothing runs later
        logger.debug("grinder did not answer a reading in time name=%s", grinder.name)
        stats = {**grinder.item_counts(), "state": "unresponsive"}
    return GrinderReading(stats, grinder.item_timings(), grinder.recent_failures())


def _read_scheduler(reading: Reading, scheduler: object) -> None:
    if isinstance(scheduler, SupervisedLeaseManager):
        reading.managers.append(scheduler.stats())
    elif isinstance(scheduler, BackgroundWorker):
        stats = scheduler.stats()
        reading.workers.append(stats)
        reading.worker_failures[stats["name"]] = scheduler.failures.recent()
    elif isinstance(scheduler, AsyncJobScheduler):
        pass  # listed with the supervisor's own stats
