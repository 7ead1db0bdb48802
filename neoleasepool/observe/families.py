"""The metrics of a :class:`~.reading.Reading`: :data:`CATALOG`, the table
in ``doc/observability.md``.

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

__all__ = ["CATALOG", "OUTCOMES", "PREFIX", "families"]

PREFIX = "neoleasepool_"
#: How an item can end, as the ``outcome`` label says it.
OUTCOMES = ("ok", "error", "cancelled", "timeout")

#: Every metric (without :data:`PREFIX`): its kind, labels and meaning.
CATALOG: dict[str, tuple[Kind, str, str]] = {
    "info": ("gauge", "version", "Always 1; the label says which neoleasepool runs."),
    # The supervisor.
    "supervisor_active": ("gauge", "supervisor", "1 while the supervisor runs."),
    "supervisor_loop_lag_seconds": (
        "gauge", "supervisor", "How late the supervisor's own loop ran its latest timer."),
    "supervisor_pool_threads": ("gauge", "supervisor", "Threads in the supervisor's pool."),
    "supervisor_pool_max_threads": (
        "gauge", "supervisor", "Most threads the supervisor's pool may have."),
    # Aloops.
    "aloop_active": ("gauge", "aloop", "1 while the aloop runs and takes work."),
    "aloop_tasks": ("gauge", "aloop", "Tasks on the aloop."),
    "aloop_lag_seconds": (
        "gauge", "aloop", "How late the aloop ran its latest timer (event-loop lag)."),
    "aloop_lag_max_seconds": ("gauge", "aloop", "The aloop's highest lag over the last minute."),
    # Lease managers.
    "manager_leases_active": ("gauge", "manager, backend", "Leases held now."),
    "manager_leases_waiting": ("gauge", "manager, backend", "Callers waiting for a lease."),
    "manager_leases_granted_total": ("counter", "manager, backend", "Leases granted."),
    "manager_leases_released_total": (
        "counter", "manager, backend", "Leases released by their holders."),
    "manager_leases_revoked_total": (
        "counter", "manager, backend", "Leases revoked at their hard expiry."),
    "manager_pools": (
        "gauge", "manager, backend, state", "Executors (pools): available, leased, retiring."),
    "manager_pools_desired": ("gauge", "manager, backend", "Executors the sizing rule asks for."),
    "manager_pools_max": ("gauge", "manager, backend", "Most executors the manager may own."),
    "manager_pools_created_total": ("counter", "manager, backend", "Executors created."),
    "manager_pools_retired_total": (
        "counter", "manager, backend", "Executors retired (shrinking, or stop)."),
    "manager_pools_broken_total": (
        "counter", "manager, backend", "Executors found broken and replaced."),
    "manager_workers_restarted_total": (
        "counter", "manager, backend, reason",
        "Process workers replaced: died, timeout, cancelled, killed, max_tasks, "
        "max_memory, max_age."),
    # Grinders.
    "grinder_items_submitted_total": ("counter", "grinder, manager", "Items submitted."),
    "grinder_items_total": (
        "counter", "grinder, manager, outcome",
        "Items ended, by outcome: ok, error, cancelled, timeout."),
    "grinder_queue_depth": ("gauge", "grinder, manager", "Items waiting in the grinder's queue."),
    "grinder_oldest_wait_seconds": (
        "gauge", "grinder, manager", "How long the oldest queued item has waited."),
    "grinder_items_running": ("gauge", "grinder, manager", "Items out in executor calls."),
    "grinder_items_overdue": (
        "gauge", "grinder, manager", "Items past their time limit whose thread still runs them."),
    "grinder_batches_in_flight": ("gauge", "grinder, manager", "Batches holding a lease."),
    "grinder_batches_total": ("counter", "grinder, manager", "Batches run."),
    "grinder_item_queue_seconds": (
        "histogram", "grinder, manager",
        "From submission until the item left the grinder's queue."),
    "grinder_item_run_seconds": (
        "histogram", "grinder, manager", "From leaving the queue until the item's end."),
    "grinder_item_latency_seconds": (
        "histogram", "grinder, manager", "From submission until the item's end."),
    # Background workers.
    "worker_active": ("gauge", "worker", "1 while the background worker runs."),
    "worker_runs_total": ("counter", "worker", "Runs of the worker's target."),
    "worker_errors_total": ("counter", "worker", "Runs that raised."),
    "worker_last_run_timestamp_seconds": (
        "gauge", "worker", "When the target last started (Unix time)."),
}


class _Families:
    """Families by name, made on first use, in :data:`CATALOG` order."""

    def __init__(self) -> None:
        self._by_name: dict[str, Family] = {}

    def __call__(self, name: str) -> Family:
        family = self._by_name.get(name)
        if family is None:
            kind, _, meaning = CATALOG[name]
            family = self._by_name[name] = Family(PREFIX + name, kind, meaning)
        return family

    def all(self) -> list[Family]:
        order = {name: index for index, name in enumerate(CATALOG)}
        return sorted(self._by_name.values(), key=lambda f: order[f.name[len(PREFIX):]])


def families(reading: Reading) -> list[Family]:
    """Every metric family of ``reading`` (those without samples too)."""
    f = _Families()
    f("info").add(1, version=reading.version)
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
    if not sup:  # parts read without a supervisor (standalone.py)
        return
    labels = {"supervisor": sup["id"]}
    own = reading.own_loop or {}
    f("supervisor_active").add(sup["active"], **labels)
    f("supervisor_loop_lag_seconds").add(own.get("lag_seconds"), **labels)
    f("supervisor_pool_threads").add(sup["pool"].get("threads"), **labels)
    f("supervisor_pool_max_threads").add(sup["pool"]["max_size"], **labels)


def _aloops(f: _Families, aloops: Iterable[dict[str, Any]]) -> None:
    for aloop in aloops:
        labels = {"aloop": aloop["name"]}
        f("aloop_active").add(aloop["active"], **labels)
        f("aloop_tasks").add(aloop.get("tasks"), **labels)
        f("aloop_lag_seconds").add(aloop.get("lag_seconds"), **labels)
        f("aloop_lag_max_seconds").add(aloop.get("lag_max_seconds"), **labels)


def _manager(f: _Families, m: dict[str, Any]) -> None:
    labels = {"manager": m["name"], "backend": str(m["backend"])}
    f("manager_leases_active").add(m["leased"], **labels)
    f("manager_leases_waiting").add(m["waiting"], **labels)
    f("manager_leases_granted_total").add(m["leases_granted"], **labels)
    f("manager_leases_released_total").add(m["leases_released"], **labels)
    f("manager_leases_revoked_total").add(m["leases_revoked"], **labels)
    for state in ("available", "leased", "retiring"):
        f("manager_pools").add(m[state], **labels, state=state)
    f("manager_pools_desired").add(m["desired"], **labels)
    f("manager_pools_max").add(m["max_pools"], **labels)
    f("manager_pools_created_total").add(m["pools_created"], **labels)
    f("manager_pools_retired_total").add(m["pools_retired"], **labels)
    f("manager_pools_broken_total").add(m["pools_broken"], **labels)
    restarted = m.get("backend_details", {}).get("workers_restarted", {})
    for reason, count in sorted(restarted.items()):
        f("manager_workers_restarted_total").add(count, **labels, reason=reason)


def _grinder(f: _Families, g: GrinderReading) -> None:
    """A grinder's families; an unresponsive one (no answer from its loop)
    has its counters and timings but no gauges."""
    s = g.stats
    labels = {"grinder": s["name"], "manager": s["manager"]}
    timed_out = s["items_timed_out"]
    ended = (s["items_completed"], s["items_failed"] - timed_out, s["items_cancelled"], timed_out)
    f("grinder_items_submitted_total").add(s["items_submitted"], **labels)
    for outcome, count in zip(OUTCOMES, ended, strict=True):
        f("grinder_items_total").add(count, **labels, outcome=outcome)
    f("grinder_queue_depth").add(s.get("pending"), **labels)
    f("grinder_oldest_wait_seconds").add(s.get("oldest_wait_seconds"), **labels)
    f("grinder_items_running").add(s.get("running"), **labels)
    f("grinder_items_overdue").add(s["items_overdue"], **labels)
    f("grinder_batches_in_flight").add(s.get("batches_in_flight"), **labels)
    f("grinder_batches_total").add(s["batches_run"], **labels)
    for timing in ("queue", "run", "latency"):
        f(f"grinder_item_{timing}_seconds").add(g.timings.get(timing), **labels)


def _worker(f: _Families, w: dict[str, Any]) -> None:
    labels = {"worker": w["name"]}
    f("worker_active").add(w["active"], **labels)
    f("worker_runs_total").add(w["runs"], **labels)
    f("worker_errors_total").add(w["errors"], **labels)
    f("worker_last_run_timestamp_seconds").add(w.get("last_run"), **labels)
