"""``/status.json``: what the status page shows, from a reading and the history.

:func:`build_status` picks from a :class:`~.reading.Reading` the figures
the page renders and adds the series of :class:`~.history.History`. Every
number is finite or ``None`` (browsers' ``JSON.parse`` refuses ``NaN``),
and nothing here holds the arguments or results of user work: failures
are the parts' own short records (time, where, error type, message).

The shape, version 1 (:data:`SCHEMA`)::

    {"schema": 1, "version", "time", "sample_seconds", "window_seconds",
     "supervisor": {"id", "active", "stopping", "pool_threads", "pool_max"},
     "managers": [{"name", "backend", "state", "desired", "total", "leased",
                   "available", "retiring", "waiting", "max_pools",
                   "leases_granted", "leases_released", "leases_revoked",
                   "leases": [{"lease_id", "owner", "state", "pending",
                               "seconds_to_soft_expiry",
                               "seconds_to_hard_expiry"}]}],
     "grinders": [{"name", "manager", "state", "pending", "running",
                   "batches_in_flight", "oldest_wait_seconds", "submitted",
                   "completed", "failed", "cancelled", "timed_out",
                   "latency_measured", "minute": {"items_per_second",
                   "p50_seconds", "p95_seconds"},
                   "series": {"time": [], "queue": [], "items_per_second": [],
                              "p50_seconds": [], "p95_seconds": []}}],
     "aloops": [{"name", "own", "active", "tasks", "lag_seconds",
                 "lag_max_seconds", "series": {"time": [], "lag_seconds": []}}],
     "workers": [{"name", "kind", "state", "active", "runs", "errors",
                  "last_run", "last_run_age_seconds"}],
     "failures": [{"time", "source", "kind", "where", "error", "message"}]}

The ``series`` of a grinder are per interval between two samples (one
fewer than the samples); ``queue`` is the depth at each interval's end.
"""

from __future__ import annotations

import math
from typing import Any

from .history import SAMPLE_SECONDS, WINDOW_SECONDS, History
from .reading import GrinderReading, Reading

__all__ = ["FAILURES_SHOWN", "SCHEMA", "build_status"]

#: The version of the JSON's shape.
SCHEMA = 1
#: Failures shown, newest last.
FAILURES_SHOWN = 30


def build_status(reading: Reading, history: History) -> dict[str, Any]:
    """The ``/status.json`` document of ``reading``, with ``history``'s series."""
    sup = reading.supervisor
    pool = sup.get("pool", {})
    return {
        "schema": SCHEMA,
        "version": reading.version,
        "time": _num(reading.time),
        "sample_seconds": SAMPLE_SECONDS,
        "window_seconds": WINDOW_SECONDS,
        "supervisor": {
            "id": sup.get("id"),
            "active": bool(sup.get("active")),
            "stopping": bool(sup.get("stopping")),
            "pool_threads": _num(pool.get("threads")),
            "pool_max": _num(pool.get("max_size")),
        },
        "managers": [_manager(m) for m in reading.managers],
        "grinders": [_grinder(g, history) for g in reading.grinders],
        "aloops": _aloops(reading, history),
        "workers": [_worker(w, reading.time) for w in reading.workers],
        "failures": _failures(reading),
    }


def _manager(m: dict[str, Any]) -> dict[str, Any]:
    keys = ("desired", "total", "leased", "available", "retiring", "waiting", "max_pools",
            "leases_granted", "leases_released", "leases_revoked")
    return {
        "name": str(m.get("name")),
        "backend": str(m.get("backend")),
        "state": str(m.get("state")),
        **{key: _num(m.get(key)) for key in keys},
        "leases": [
            {
                "lease_id": str(lease.get("lease_id")),
                "owner": str(lease.get("owner")),
                "state": str(lease.get("state")),
                "pending": _num(lease.get("pending")),
                "seconds_to_soft_expiry": _num(lease.get("seconds_until_soft_expiry")),
                "seconds_to_hard_expiry": _num(lease.get("seconds_until_hard_expiry")),
            }
            for lease in m.get("leases", [])
        ],
    }


def _grinder(g: GrinderReading, history: History) -> dict[str, Any]:
    s = g.stats
    name = str(s.get("name"))
    measured = "latency" in g.timings
    minute: dict[str, float | None] = {
        "items_per_second": None, "p50_seconds": None, "p95_seconds": None,
    }
    series: dict[str, list[float | None]] = {
        "time": [], "queue": [], "items_per_second": [], "p50_seconds": [], "p95_seconds": [],
    }
    grinder_history = history.grinder(name)
    if grinder_history is not None:
        window = grinder_history.window()
        if window is not None:
            minute = {
                "items_per_second": _num(window.items_per_second),
                "p50_seconds": _num(window.p50),
                "p95_seconds": _num(window.p95),
            }
        depth = {sample.time: sample.pending for sample in grinder_history.samples}
        for interval in grinder_history.intervals():
            series["time"].append(_num(interval.time))
            series["queue"].append(_num(depth.get(interval.time)))
            series["items_per_second"].append(_num(interval.items_per_second))
            series["p50_seconds"].append(_num(interval.p50))
            series["p95_seconds"].append(_num(interval.p95))
    return {
        "name": name,
        "manager": str(s.get("manager")),
        "state": str(s.get("state")),
        **{shown: _num(s.get(key)) for shown, key in _GRINDER_FIGURES},
        "latency_measured": measured,
        "minute": minute,
        "series": series,
    }


#: A grinder's figures on the page: (``status.json`` key, ``stats()`` key).
_GRINDER_FIGURES = (
    ("pending", "pending"),
    ("running", "running"),
    ("batches_in_flight", "batches_in_flight"),
    ("oldest_wait_seconds", "oldest_wait_seconds"),
    ("submitted", "items_submitted"),
    ("completed", "items_completed"),
    ("failed", "items_failed"),
    ("cancelled", "items_cancelled"),
    ("timed_out", "items_timed_out"),
)


def _aloops(reading: Reading, history: History) -> list[dict[str, Any]]:
    loops = [(True, reading.own_loop)] if reading.own_loop is not None else []
    loops += [(False, aloop) for aloop in reading.aloops]
    shown = []
    for own, aloop in loops:
        name = str(aloop.get("name"))
        lags = history.aloop_lags(name)
        shown.append({
            "name": name,
            "own": own,
            "active": bool(aloop.get("active")),
            "tasks": _num(aloop.get("tasks")),
            "lag_seconds": _num(aloop.get("lag_seconds")),
            "lag_max_seconds": _num(aloop.get("lag_max_seconds")),
            "series": {
                "time": [_num(sample.time) for sample in lags],
                "lag_seconds": [_num(sample.lag) for sample in lags],
            },
        })
    return shown


def _worker(w: dict[str, Any], now: float) -> dict[str, Any]:
    last_run = _num(w.get("last_run"))
    return {
        "name": str(w.get("name")),
        "kind": str(w.get("kind")),
        "state": str(w.get("state")),
        "active": bool(w.get("active")),
        "runs": _num(w.get("runs")),
        "errors": _num(w.get("errors")),
        "last_run": last_run,
        "last_run_age_seconds": None if last_run is None else max(0.0, now - last_run),
    }


def _failures(reading: Reading) -> list[dict[str, Any]]:
    merged: list[dict[str, Any]] = []
    for grinder in reading.grinders:
        source = str(grinder.stats.get("name"))
        merged.extend(_failure(f, source, "grinder") for f in grinder.failures)
    for name, failures in reading.worker_failures.items():
        merged.extend(_failure(f, name, "worker") for f in failures)
    merged.sort(key=lambda f: f["time"] or 0.0)
    return merged[-FAILURES_SHOWN:]


def _failure(entry: dict[str, Any], source: str, kind: str) -> dict[str, Any]:
    return {
        "time": _num(entry.get("time")),
        "source": source,
        "kind": kind,
        "where": str(entry.get("where", "")),
        "error": str(entry.get("error", "")),
        "message": str(entry.get("message", "")),
    }


def _num(value: object) -> float | None:
    """``value`` if it is a finite number (an int stays an int), else ``None``."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return None
