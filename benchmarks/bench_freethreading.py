"""Threads on every core: the thread backend on a free-threaded CPython
(issue 18). Meaningful only where the GIL is off: ``make bench-ft`` runs
this module under 3.13t with ``PYTHON_GIL=0``; elsewhere it says so and
adds no row.

Rows (the sides of each alternating within every repetition):

* 2 ms pure-Python CPU items through a grinder, thread backend, one pool
  of 2 workers against one of 1 worker (target 1.7x on 2 cores).
* The same items, thread 1x2 against process 1x2 (our ``WorkerPool``): no
  pickling on threads.
* 20,000 tiny items (``x * x``), thread 1x2 against process 1x2: where
  pickling dominates.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from neoleasepool import WorkGrinder
from neoleasepool._util.gil import gil_enabled

from ._harness import Reporter, Row, alternating_medians_async, started_grinder
from ._work import spin, square

REPEAT = 5
CPU_ITEMS = 200
TINY_ITEMS = 20_000


def _rounds_for(seconds: float) -> int:
    """Loop rounds of :func:`spin` that take about ``seconds`` here."""
    rounds = 10_000
    while True:
        start = time.perf_counter()
        spin(rounds)
        took = time.perf_counter() - start
        if took > 0.02:
            return max(1, int(rounds * seconds / took))
        rounds *= 2


def _items(grinder: WorkGrinder, fn: Callable[[int], Any], arg: int, n: int) -> Callable[
    [], Awaitable[None]
]:
    async def side() -> None:
        await asyncio.gather(*[grinder.submit(fn, arg) for _ in range(n)])

    return side


async def main(reporter: Reporter) -> None:
    rounds = _rounds_for(0.002)
    async with (
        started_grinder("thread", 2, max_wait_seconds=0.01) as two,
        started_grinder("thread", 1, max_wait_seconds=0.01) as one,
        started_grinder("process", 2, max_wait_seconds=0.01) as procs,
    ):
        threads2, thread1, process2 = await alternating_medians_async(
            [_items(g, spin, rounds, CPU_ITEMS) for g in (two, one, procs)], repeat=REPEAT
        )
        reporter.add(Row("2 ms CPU items, thread 1x2 vs 1x1 (GIL off)", "items/s",
                         CPU_ITEMS / threads2, "1 worker", CPU_ITEMS / thread1, target=1.7))
        reporter.add(Row("2 ms CPU items, thread 1x2 vs process 1x2", "items/s",
                         CPU_ITEMS / threads2, "process 1x2", CPU_ITEMS / process2))
        tiny_threads, tiny_procs = await alternating_medians_async(
            [_items(g, square, 3, TINY_ITEMS) for g in (two, procs)], repeat=REPEAT
        )
        reporter.add(Row("20k x*x, thread 1x2 vs process 1x2", "items/s",
                         TINY_ITEMS / tiny_threads, "process 1x2", TINY_ITEMS / tiny_procs))


def run(reporter: Reporter) -> None:
    if gil_enabled():
        print("  (skipped: the GIL is on here; `make bench-ft` runs this module on 3.13t)")
        return
    asyncio.run(main(reporter))
