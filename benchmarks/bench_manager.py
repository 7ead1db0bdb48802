"""LeasedExecutorManager: the per-item and the per-lease hot paths.

Rows, each against a baseline timed in the same run:

* ``lease.run(noop)`` against plain ``loop.run_in_executor`` on a
  ``ThreadPoolExecutor`` of the same size: what a lease costs per call.
  Three shapes, the same on both sides: ``ITEMS`` awaits in batches of
  ``BATCH`` gathered calls; ``SEQUENTIAL`` awaits one by one; and (issue 14)
  ``TASKS`` concurrent tasks that each await ``CALLS_PER_TASK`` calls in
  turn, where both sides create the same tasks (``asyncio.gather`` of the
  same coroutine functions), so only the call differs.
* acquire, run one no-op, release, in a loop, against leasepool 0.1.3's
  ``LeasedExecutorManager`` built with the same arguments: what a lease
  costs per lease.  Neither side configures logging (the default: no
  handlers, root level WARNING), so INFO calls are dropped the same way.
  A third row (no target) drops the no-op: acquire and release alone, the
  manager's own cost without the thread round trip both sides share.

Ours and the baseline alternate within each repetition, so that drift on a
shared machine hits both sides alike; each figure is the median.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from neoleasepool import LeasedExecutorManager

from ._harness import Reporter, Row, alternating_medians_async, have, manager_kwargs

WORKERS = 4
ITEMS = 20_000
BATCH = 50
SEQUENTIAL = 5_000
TASKS = 50
CALLS_PER_TASK = 400
LEASE_CYCLES = 3_000
BARE_CYCLES = 20_000
REPEAT = 7
WARMUP = 1

# Identical constructor arguments for ours and leasepool's manager.
MANAGER_KWARGS = manager_kwargs(max_pools=2, workers_per_pool=WORKERS)


def noop() -> None:
    return None


Timed = Callable[[], Awaitable[None]]


async def _alternating_medians(sides: list[Timed]) -> list[float]:
    return await alternating_medians_async(sides, repeat=REPEAT, warmup=WARMUP)


async def _batches(call: Callable[[], Awaitable[Any]]) -> None:
    for _ in range(ITEMS // BATCH):
        await asyncio.gather(*[call() for _ in range(BATCH)])


async def _one_by_one(call: Callable[[], Awaitable[Any]]) -> None:
    for _ in range(SEQUENTIAL):
        await call()


async def _tasks_in_turn(call: Callable[[], Awaitable[Any]]) -> None:
    async def in_turn() -> None:
        for _ in range(CALLS_PER_TASK):
            await call()

    await asyncio.gather(*[in_turn() for _ in range(TASKS)])


async def _run_throughput(
    shape: Callable[[Callable[[], Awaitable[Any]]], Awaitable[None]], items: int
) -> tuple[float, float]:
    loop = asyncio.get_running_loop()
    manager = LeasedExecutorManager(**MANAGER_KWARGS)
    await manager.start()
    plain = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="bench-plain")
    try:
        async with await manager.acquire(owner="bench") as lease:

            async def ours() -> None:
                await shape(lambda: lease.run(noop))

            async def baseline() -> None:
                await shape(lambda: loop.run_in_executor(plain, noop))

            ours_s, base_s = await _alternating_medians([ours, baseline])
    finally:
        plain.shutdown(wait=True)
        await manager.stop()
    return items / ours_s, items / base_s


async def _lease_cycles(manager: Any) -> None:
    for _ in range(LEASE_CYCLES):
        lease = await manager.acquire(owner="bench")
        await lease.run(noop)
        await lease.release()


async def _bare_cycles(manager: Any) -> None:
    for _ in range(BARE_CYCLES):
        lease = await manager.acquire(owner="bench")
        await lease.release()


async def _run_cycles(
    cycles: Callable[[Any], Awaitable[None]], count: int, with_baseline: bool
) -> tuple[float, float | None]:
    managers: list[Any] = [LeasedExecutorManager(**MANAGER_KWARGS)]
    if with_baseline:
        leasepool = importlib.import_module("leasepool")  # bench-only baseline
        managers.append(leasepool.LeasedExecutorManager(**MANAGER_KWARGS))
    for manager in managers:
        await manager.start()
    try:
        sides: list[Timed] = [functools.partial(cycles, m) for m in managers]
        medians = await _alternating_medians(sides)
    finally:
        for manager in managers:
            await manager.stop()
    rates = [count / s for s in medians]
    return rates[0], (rates[1] if with_baseline else None)


def run(reporter: Reporter) -> None:
    ours, baseline = asyncio.run(_run_throughput(_batches, ITEMS))
    reporter.add(
        Row(
            name=f"lease.run(noop), {WORKERS} workers, gathered",
            unit="calls/s",
            ours=ours,
            baseline_name="run_in_executor",
            baseline=baseline,
            target=0.9,
            notes=f"{ITEMS:,} calls in gathered batches of {BATCH}; gather makes "
            "a task per coroutine, run_in_executor returns a bare future",
        )
    )
    ours, baseline = asyncio.run(_run_throughput(_one_by_one, SEQUENTIAL))
    reporter.add(
        Row(
            name=f"lease.run(noop), {WORKERS} workers, one by one",
            unit="calls/s",
            ours=ours,
            baseline_name="run_in_executor",
            baseline=baseline,
            target=0.9,
            notes=f"{SEQUENTIAL:,} sequential awaits",
        )
    )
    ours, baseline = asyncio.run(_run_throughput(_tasks_in_turn, TASKS * CALLS_PER_TASK))
    reporter.add(
        Row(
            name=f"lease.run(noop), {WORKERS} workers, {TASKS} tasks in turn",
            unit="calls/s",
            ours=ours,
            baseline_name="run_in_executor",
            baseline=baseline,
            target=0.95,
            notes=f"{TASKS} tasks x {CALLS_PER_TASK} sequential awaits each; "
            "both sides gather the same tasks",
        )
    )

    with_baseline = have("leasepool")
    missing = "" if with_baseline else "; leasepool not installed"
    ours, baseline_or_none = asyncio.run(
        _run_cycles(_lease_cycles, LEASE_CYCLES, with_baseline)
    )
    reporter.add(
        Row(
            name="acquire + run(noop) + release",
            unit="leases/s",
            ours=ours,
            baseline_name="leasepool 0.1.3",
            baseline=baseline_or_none,
            target=2.0,
            notes=f"{LEASE_CYCLES:,} sequential cycles{missing}",
        )
    )

    ours, baseline_or_none = asyncio.run(
        _run_cycles(_bare_cycles, BARE_CYCLES, with_baseline)
    )
    reporter.add(
        Row(
            name="acquire + release (no work)",
            unit="leases/s",
            ours=ours,
            baseline_name="leasepool 0.1.3",
            baseline=baseline_or_none,
            notes=f"{BARE_CYCLES:,} sequential cycles; diagnostic, no target{missing}",
        )
    )
