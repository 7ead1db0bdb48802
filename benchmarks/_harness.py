"""A tiny benchmark harness: medians of repeated runs, reported as ratios.

These machines are shared and noisy, so every row compares our figure with
a baseline measured in the same run, and each figure is the median of
several repetitions timed with ``time.perf_counter``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import statistics
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "Reporter",
    "Row",
    "alternating_medians",
    "alternating_medians_async",
    "grinder_kwargs",
    "have",
    "manager_kwargs",
    "median_seconds",
]


def have(module: str) -> bool:
    """Whether ``module`` can be imported (a baseline may be missing)."""
    return importlib.util.find_spec(module) is not None


def median_seconds(fn: Callable[[], Any], *, repeat: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeat`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def alternating_medians(
    sides: list[Callable[[], float]], *, repeat: int = 5, warmup: int = 1
) -> list[float]:
    """Median of what each side returns (seconds), alternating every repetition.

    Alternating spreads a noisy neighbour over every side alike.
    """
    for _ in range(warmup):
        for side in sides:
            side()
    times: list[list[float]] = [[] for _ in sides]
    for _ in range(repeat):
        for index, side in enumerate(sides):
            times[index].append(side())
    return [statistics.median(t) for t in times]


def from_threads(call: Callable[[], Any], threads: int, calls_per_thread: int) -> float:
    """Seconds for ``threads`` plain threads, released together, to make
    ``calls_per_thread`` calls of ``call`` each."""
    ready = threading.Barrier(threads + 1)

    def caller() -> None:
        ready.wait()
        for _ in range(calls_per_thread):
            call()

    workers = [threading.Thread(target=caller, name=f"bench-caller-{n}") for n in range(threads)]
    for worker in workers:
        worker.start()
    ready.wait()
    start = time.perf_counter()
    for worker in workers:
        worker.join()
    return time.perf_counter() - start


def balanced_medians(
    sides: list[Callable[[], float]], *, repeat: int = 6, warmup: int = 1
) -> list[float]:
    """As :func:`alternating_medians`, but each repetition reverses the order
    of the sides (AB, BA, AB...), so that whatever favours the side that runs
    first (seen: a few percent on 20k-item grinder runs) favours each side
    alike. For rows that compare two settings of the same thing."""
    for _ in range(warmup):
        for side in sides:
            side()
    times: list[list[float]] = [[] for _ in sides]
    for rep in range(repeat):
        order = list(enumerate(sides))
        for index, side in order if rep % 2 == 0 else reversed(order):
            times[index].append(side())
    return [statistics.median(t) for t in times]


async def balanced_medians_async(
    sides: list[Callable[[], Awaitable[Any]]], *, repeat: int = 6, warmup: int = 1
) -> list[float]:
    """Async twin of :func:`balanced_medians`: seconds of awaiting each side."""
    for _ in range(warmup):
        for side in sides:
            await side()
    times: list[list[float]] = [[] for _ in sides]
    for rep in range(repeat):
        order = list(enumerate(sides))
        for index, side in order if rep % 2 == 0 else reversed(order):
            start = time.perf_counter()
            await side()
            times[index].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


async def alternating_medians_async(
    sides: list[Callable[[], Awaitable[Any]]], *, repeat: int = 5, warmup: int = 1
) -> list[float]:
    """Median seconds of awaiting each side, alternating every repetition."""
    for _ in range(warmup):
        for side in sides:
            await side()
    times: list[list[float]] = [[] for _ in sides]
    for _ in range(repeat):
        for index, side in enumerate(sides):
            start = time.perf_counter()
            await side()
            times[index].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def manager_kwargs(
    *, backend: str = "thread", max_pools: int, workers_per_pool: int
) -> dict[str, Any]:
    """Constructor arguments that ours and leasepool's managers both take.

    A long lease and check interval keep the checker out of the measurement.
    """
    return {
        "backend": backend,
        "max_pools": max_pools,
        "min_pools": 1,
        "workers_per_pool": workers_per_pool,
        "check_interval": 60.0,
        "default_lease_seconds": 60.0,
    }


@contextlib.asynccontextmanager
async def started_grinder(
    backend: str, workers: int, *, max_wait_seconds: float = 0.05
) -> AsyncIterator[Any]:
    """A started grinder (threshold 100) on a started manager of one pool of
    ``workers``; both stopped after the block."""
    from neoleasepool import LeasedExecutorManager, WorkGrinder

    manager = LeasedExecutorManager(
        **manager_kwargs(backend=backend, max_pools=1, workers_per_pool=workers)
    )
    await manager.start()
    grinder = WorkGrinder(executor_manager=manager, batch_size_threshold=100,
                          max_wait_seconds=max_wait_seconds, lease_seconds=60.0)
    await grinder.start()
    try:
        yield grinder
    finally:
        await grinder.stop()
        await manager.stop()


def grinder_kwargs(*, threshold: int, max_wait_seconds: float) -> dict[str, Any]:
    """Constructor arguments that ours and leasepool's grinders both take."""
    return {
        "batch_size_threshold": threshold,
        "max_wait_seconds": max_wait_seconds,
        "lease_seconds": 60.0,
    }


@dataclass
class Row:
    """One comparison: ours against a baseline measured in the same run."""

    name: str
    unit: str
    ours: float
    baseline_name: str
    baseline: float | None
    higher_is_better: bool = True
    target: float | None = None
    notes: str = ""

    @property
    def ratio(self) -> float | None:
        """How many times better ours is (>1 is better), or None."""
        if self.baseline in (None, 0) or self.ours == 0:
            return None
        assert self.baseline is not None
        if self.higher_is_better:
            return self.ours / self.baseline
        return self.baseline / self.ours

    @property
    def meets_target(self) -> bool | None:
        ratio = self.ratio
        if ratio is None or self.target is None:
            return None
        return ratio >= self.target


@dataclass
class Reporter:
    """Collects rows and prints them as a table or as JSON."""

    rows: list[Row] = field(default_factory=list)
    verbose: bool = True

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        if self.verbose:
            print(self._format(row), flush=True)
        return row

    @staticmethod
    def _format(row: Row) -> str:
        ratio = "n/a" if row.ratio is None else f"{row.ratio:.2f}x"
        base = "missing" if row.baseline is None else f"{row.baseline:,.4g}"
        target = ""
        if row.target is not None:
            verdict = {True: "ok", False: "MISSED", None: "?"}[row.meets_target]
            target = f"  target >= {row.target:g}x: {verdict}"
        notes = f"  ({row.notes})" if row.notes else ""
        return (
            f"{row.name:<48} ours {row.ours:>12,.4g} {row.unit:<10} "
            f"{row.baseline_name} {base:>12}  ratio {ratio:>7}{target}{notes}"
        )

    def to_json(self) -> str:
        return json.dumps(
            [asdict(r) | {"ratio": r.ratio, "meets_target": r.meets_target} for r in self.rows],
            indent=2,
        )
