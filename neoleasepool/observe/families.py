"""The metrics of a :class:`~.reading.Reading`: the table in
``doc/observability.md``.

Each function below turns one kind of part into its families. Counters
come from the counts the parts keep anyway; gauges are the parts' state at
the moment of the reading; histograms are the grinders' item timings. A
label names a component, or one value of a small fixed set.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .model import Family, Kind
from .reading import GrinderReading, Reading

__all__ = ["OUTCOMES", "families"]

#: How an item can end, as the ``outcome`` label says it.
OUTCOMES = ("ok", "error", "cancelled", "timeout")
#: A manager's pools by ``state``.
POOL_STATES = ("available", "leased", "retiring")


class _Families:
    """Families by name, made on first use, in order of first use."""

    def __init__(self) -> None:
        self._by_name: dict[str, Family] = {}

    def __call__(self, name: str, kind: Kind, help: str) -> Family:
        family = self._by_name.get(name)
        if family is None:
            family = self._by_name[name] = Family(f"neoleasepool_{name}", kind, help)
        return family

    def all(self) -> list[Family]:
        return list(self._by_name.values())


def families(reading: Reading) -> list[Family]:
    """Every metric family of ``reading``."""
    f = _Families()
    f("info", "gauge", "Always 1; the version label says which neoleasepool runs.").add(
        1, version=reading.version
    )
    _supervisor(f, reading)
    _aloops(f, reading.aloops)
    for manager in reading.managers:
        _manager(f, manager)
    for grinder in reading.grinders:
        _grinder(f, grinder)
    for worker in reading.workers:
        _worker(f, worker)
    return f.all()


def _supervisor(f: _Families, reading: Reading) -> None:
    sup = reading.supervisor
    f("supervisor_active", "gauge", "1 while the supervisor runs.").add(
        sup["active"], supervisor=sup["id"]
    )
    own = reading.own_loop or {}
    f("supervisor_loop_lag_seconds", "gauge",
      "How late the supervisor's own loop ran its latest timer.").add(
        own.get("lag_seconds"), supervisor=sup["id"]
    )
    pool = sup["pool"]
    f("supervisor_pool_threads", "gauge", "Threads in the supervisor's pool.").add(
        pool.get("threads"), supervisor=sup["id"]
    )
    f("supervisor_pool_max_threads", "gauge", "Most threads the supervisor's pool may have.").add(
        pool["max_size"], supervisor=sup["id"]
    )


def _aloops(f: _Families, aloops: Iterable[dict[str, Any]]) -> None:
    for aloop in aloops:
        name = aloop["name"]
        f("aloop_active", "gauge", "1 while the aloop runs and takes work.").add(
            aloop["active"], aloop=name
        )
        f("aloop_tasks", "gauge", "Tasks on the aloop.").add(aloop.get("tasks"), aloop=name)
        f("aloop_lag_seconds", "gauge",
          "How late the aloop ran its latest timer (event-loop lag).").add(
            aloop.get("lag_seconds"), aloop=name
        )
        f("aloop_lag_max_seconds", "gauge", "The aloop's highest lag over the last minute.").add(
            aloop.get("lag_max_seconds"), aloop=name
        )


def _manager(f: _Families, m: dict[str, Any]) -> None:
    labels = {"manager": m["name"], "backend": str(m["backend"])}
    f("manager_leases_active", "gauge", "Leases held now.").add(m["leased"], **labels)
    f("manager_leases_waiting", "gauge", "Callers waiting for a lease.").add(
        m["waiting"], **labels
    )
    f("manager_leases_granted_total", "counter", "Leases granted.").add(
        m["leases_granted"], **labels
    )
    f("manager_leases_released_total", "counter", "Leases released by their holders.").add(
        m["leases_released"], **labels
    )
    f("manager_leases_revoked_total", "counter", "Leases revoked at their hard expiry.").add(
        m["leases_revoked"], **labels
    )
    pools = f("manager_pools", "gauge", "Executors (pools) by state.")
    pools.add(m["available"], state="available", **labels)
    pools.add(m["leased"], state="leased", **labels)
    pools.add(m["retiring"], state="retiring", **labels)
    f("manager_pools_desired", "gauge", "Executors the sizing rule asks for.").add(
        m["desired"], **labels
    )
    f("manager_pools_max", "gauge", "Most executors the manager may own.").add(
        m["max_pools"], **labels
    )
    f("manager_pools_created_total", "counter", "Executors created.").add(
        m["pools_created"], **labels
    )
    f("manager_pools_retired_total", "counter", "Executors retired (shrinking, or stop).").add(
        m["pools_retired"], **labels
    )
    f("manager_pools_broken_total", "counter", "Executors found broken and replaced.").add(
        m["pools_broken"], **labels
    )
    restarted = f("manager_workers_restarted_total", "counter",
                  "Process workers replaced, by reason.")
    for reason, count in sorted(m.get("backend_details", {}).get("workers_restarted", {}).items()):
        restarted.add(count, reason=reason, **labels)


def _grinder(f: _Families, g: GrinderReading) -> None:
    s = g.stats
    labels = {"grinder": s["name"], "manager": s["manager"]}
    f("grinder_items_submitted_total", "counter", "Items submitted.").add(
        s["items_submitted"], **labels
    )
    timed_out = s["items_timed_out"]
    ended = f("grinder_items_total", "counter", "Items ended, by outcome.")
    for outcome, count in zip(
        OUTCOMES,
        (s["items_completed"], s["items_failed"] - timed_out, s["items_cancelled"], timed_out),
        strict=True,
    ):
        ended.add(count, outcome=outcome, **labels)
    f("grinder_queue_depth", "gauge", "Items waiting in the grinder's queue.").add(
        s["pending"], **labels
    )
    f("grinder_oldest_wait_seconds", "gauge", "How long the oldest queued item has waited.").add(
        s["oldest_wait_seconds"], **labels
    )
    f("grinder_items_running", "gauge", "Items out in executor calls.").add(
        s["running"], **labels
    )
    f("grinder_items_overdue", "gauge",
      "Items past their time limit whose thread still runs them.").add(
        s["items_overdue"], **labels
    )
    f("grinder_batches_in_flight", "gauge", "Batches holding a lease.").add(
        s["batches_in_flight"], **labels
    )
    f("grinder_batches_total", "counter", "Batches run.").add(s["batches_run"], **labels)
    for name, meaning in (
        ("queue", "From submission until the item left the grinder's queue."),
        ("run", "From leaving the queue until the item's end."),
        ("latency", "From submission until the item's end."),
    ):
        f(f"grinder_item_{name}_seconds", "histogram", meaning).add(
            g.timings.get(name), **labels
        )


def _worker(f: _Families, w: dict[str, Any]) -> None:
    labels = {"worker": w["name"]}
    f("worker_active", "gauge", "1 while the background worker runs.").add(w["active"], **labels)
    f("worker_runs_total", "counter", "Runs of the worker's target.").add(w["runs"], **labels)
    f("worker_errors_total", "counter", "Runs that raised.").add(w["errors"], **labels)
    f("worker_last_run_timestamp_seconds", "gauge",
      "When the target last started (Unix time).").add(w.get("last_run"), **labels)
