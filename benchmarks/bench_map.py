"""WorkGrinder.map: bulk inputs against ``Executor.map`` (issue 16).

Rows, the sides of each alternating within every repetition:

* ``x * x`` over ``range(200_000)`` on the process backend, one pool of two
  workers, against ``ProcessPoolExecutor(2).map(..., chunksize=500)``
  (target 0.5x; 1.0x would be automatic chunking as good as a hand-tuned
  chunk size).
* A no-op over ``range(200_000)`` on the thread backend, one pool of four
  threads, against ``ThreadPoolExecutor(4).map`` (target 3x).
* The first result of a 200,000-input ``map`` on the thread backend: the
  time from the call, against a budget of 50 ms (ratio = budget / ours).
* Peak RSS growth of a ``map`` over a generator of 1,000,000 inputs, in a
  fresh interpreter, against a budget of 64 MiB (ratio = budget / ours).
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

from neoleasepool import WorkGrinder

from ._harness import Reporter, Row, alternating_medians_async, started_grinder
from ._work import noop, square

REPEAT = 5
INPUTS = 200_000

Timed = Callable[[], Awaitable[Any]]


def _ours(grinder: WorkGrinder, fn: Callable[[int], Any]) -> Timed:
    async def side() -> None:
        count = 0
        async for _ in grinder.map(fn, range(INPUTS)):
            count += 1
        assert count == INPUTS

    return side


def _theirs(pool: Any, fn: Callable[[int], Any], **kwargs: Any) -> Timed:
    async def side() -> None:
        results = await asyncio.to_thread(lambda: list(pool.map(fn, range(INPUTS), **kwargs)))
        assert len(results) == INPUTS

    return side


async def _process_row(reporter: Reporter) -> None:
    async with started_grinder("process", 2) as grinder:
        with ProcessPoolExecutor(2) as pool:
            ours, theirs = await alternating_medians_async(
                [_ours(grinder, square), _theirs(pool, square, chunksize=500)], repeat=REPEAT
            )
    reporter.add(
        Row("map 200k x*x, process 1x2 vs PPE(2).map(500)", "items/s", INPUTS / ours,
            "ProcessPoolExecutor(2)", INPUTS / theirs, target=0.5, notes="moonshot 1.0x")
    )


async def _thread_rows(reporter: Reporter) -> None:
    async with started_grinder("thread", 4) as grinder:
        with ThreadPoolExecutor(4) as pool:
            ours, theirs = await alternating_medians_async(
                [_ours(grinder, noop), _theirs(pool, noop)], repeat=REPEAT
            )
        reporter.add(
            Row("map 200k no-op, thread 1x4 vs TPE(4).map", "items/s", INPUTS / ours,
                "ThreadPoolExecutor(4)", INPUTS / theirs, target=3.0)
        )
        firsts = []
        for _ in range(REPEAT):
            start = time.perf_counter()
            stream = grinder.map(square, range(INPUTS))
            await stream.__anext__()  # type: ignore[attr-defined]
            firsts.append(time.perf_counter() - start)
            await stream.aclose()  # type: ignore[attr-defined]
        reporter.add(
            Row("map first result of 200k, thread 1x4", "ms", statistics.median(firsts) * 1e3,
                "budget", 50.0, higher_is_better=False, target=1.0)
        )


#: Run in a fresh interpreter: peak RSS before and after a 1M-input map.
_RSS_SCRIPT = """
import asyncio, resource
from neoleasepool import LeasedExecutorManager, WorkGrinder
from benchmarks._work import square

async def main():
    manager = LeasedExecutorManager(backend="thread", max_pools=1, workers_per_pool=2)
    await manager.start()
    grinder = WorkGrinder(executor_manager=manager)
    await grinder.start()
    async for _ in grinder.map(square, range(10_000)):
        pass
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    count = 0
    async for _ in grinder.map(square, (i for i in range(1_000_000))):
        count += 1
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert count == 1_000_000
    await grinder.stop()
    await manager.stop()
    print((after - before) / 1024)

asyncio.run(main())
"""


def _rss_row(reporter: Reporter) -> None:
    growths = []
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-c", _RSS_SCRIPT], capture_output=True, text=True, check=True
        )
        growths.append(float(out.stdout.strip().splitlines()[-1]))
    # A growth of 0 (all within the warm-up's peak) is reported as 0.1 MiB.
    reporter.add(
        Row("map 1M-input generator: peak RSS growth", "MiB", max(statistics.median(growths), 0.1),
            "budget", 64.0, higher_is_better=False, target=1.0)
    )


def run(reporter: Reporter) -> None:
    """Run every map row."""
    asyncio.run(_process_row(reporter))
    asyncio.run(_thread_rows(reporter))
    _rss_row(reporter)
