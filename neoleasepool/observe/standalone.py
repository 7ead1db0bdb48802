"""Metrics of lease managers and grinders run without a supervisor.

An async program that runs its own :class:`~neoleasepool.LeasedExecutorManager`
and :class:`~neoleasepool.WorkGrinder` (as leasepool users do) has no
supervisor to scrape. :func:`metrics_text_of` gives the same metrics for
the parts it is handed, named as the caller names them, so a web handler
of the program's own can serve ``/metrics``::

    async def metrics(request):
        return web.Response(text=metrics_text_of(
            managers={"cpu": manager}, grinders={"jobs": grinder}))

A grinder's snapshot is read on its own loop: call this on that loop (as
above: no wait), or from a plain thread (one hop to the loop, at most
:data:`~.reading.HOP_TIMEOUT_SECONDS`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from .._version import __version__
from ..exceptions import WrongLoopError
from ..grinder.facade import WorkGrinder
from ..leasing.manager import LeasedExecutorManager
from ..types import Stats
from .families import families
from .prometheus import render
from .reading import HOP_TIMEOUT_SECONDS, GrinderReading, Reading

__all__ = ["metrics_text_of", "reading_of"]


def metrics_text_of(
    *,
    managers: Mapping[str, LeasedExecutorManager] | None = None,
    grinders: Mapping[str, WorkGrinder] | None = None,
) -> str:
    """The Prometheus text of ``managers`` and ``grinders``, by name.

    A grinder's ``manager`` label is the name its manager has in
    ``managers`` (empty if it is not there).

    Raises:
        ValueError: If a name is empty or a part is of the wrong kind.
        TimeoutError: If a grinder's loop does not answer in time (called
            from a plain thread).
    """
    return render(families(reading_of(managers=managers, grinders=grinders)))


def reading_of(
    *,
    managers: Mapping[str, LeasedExecutorManager] | None = None,
    grinders: Mapping[str, WorkGrinder] | None = None,
) -> Reading:
    """A :class:`~.reading.Reading` of parts run without a supervisor."""
    managers, grinders = dict(managers or {}), dict(grinders or {})
    _check(managers, LeasedExecutorManager, "managers")
    _check(grinders, WorkGrinder, "grinders")
    reading = Reading(time=time.time(), version=__version__, supervisor={}, own_loop=None)
    names = {id(manager): name for name, manager in managers.items()}
    for name, manager in managers.items():
        reading.managers.append({**manager.stats(), "name": name})
    for name, grinder in grinders.items():
        stats: Stats = {
            **_grinder_stats(grinder),
            "name": name,
            "manager": names.get(id(grinder.executor_manager), ""),
        }
        reading.grinders.append(
            GrinderReading(stats, grinder.item_timings(), grinder.recent_failures())
        )
    return reading


def _grinder_stats(grinder: WorkGrinder) -> Stats:
    try:
        return grinder.stats()  # its own loop, or a grinder not running
    except WrongLoopError:
        return grinder.stats_from_thread(HOP_TIMEOUT_SECONDS)


def _check(parts: Mapping[str, object], kind: type, argument: str) -> None:
    for name, part in parts.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"{argument}: names must be non-empty strings, got {name!r}")
        if not isinstance(part, kind):
            raise ValueError(f"{argument}[{name!r}] must be a {kind.__name__}, got {part!r}")
