"""Property tests of the sizing rule and the batching rule.

No test dependency: cases come from a seeded ``random.Random`` of our own,
so a failure names its seed and replays exactly.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from typing import Any

import pytest

from neoleasepool import LeasedExecutorManager, WorkGrinder
from neoleasepool.leasing.sizing import read_units, target_pools

from .figures import report
from .support import run

LOG = logging.getLogger("tests.properties")
SEEDS = range(200)


def _units(rng: random.Random) -> Any:
    return rng.choice([
        rng.randrange(0, 1000), -rng.randrange(1, 100), rng.random() * 500, 10**100,
        float("inf"), float("-inf"), float("nan"), True, "12", None, 3.5,
    ])


def test_sizing_rule_holds_for_generated_cases(request: pytest.FixtureRequest) -> None:
    checked = 0
    for seed in SEEDS:
        rng = random.Random(seed)
        max_pools = rng.randrange(1, 50)
        min_pools = rng.randrange(1, max_pools + 1)
        per_pool = rng.randrange(1, 30)
        raw = _units(rng)
        units = read_units(lambda raw=raw: raw, LOG)
        target = target_pools(
            units, min_pools=min_pools, max_pools=max_pools, units_per_pool=per_pool
        )
        case = (seed, raw, min_pools, max_pools, per_pool)
        assert isinstance(target, int) and min_pools <= target <= max_pools, case
        assert units >= 0 and not (isinstance(units, float) and math.isnan(units)), case
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or raw != raw or raw < 0:
            assert target == min_pools, case  # unusable counts as zero units
        elif raw == float("inf") or raw >= per_pool * max_pools:
            assert target == max_pools, case
        else:
            assert target == min(max_pools, max(min_pools, math.ceil(raw / per_pool))), case
        # Monotone: more units never give fewer pools.
        more = target_pools(
            units + per_pool, min_pools=min_pools, max_pools=max_pools, units_per_pool=per_pool
        )
        assert more >= target, case
        checked += 1
    report(request.config, "properties[sizing]", cases=checked, invariants_held=4)


def test_a_raising_size_provider_counts_as_zero_units() -> None:
    def broken() -> int:
        raise RuntimeError("down")

    assert read_units(broken, LOG) == 0


async def _batching_case(seed: int) -> tuple[int, int]:
    rng = random.Random(seed)
    threshold = rng.randrange(1, 12)
    max_wait = rng.choice([0.01, 0.03, 0.05])
    n = rng.randrange(1, 80)
    manager = LeasedExecutorManager(max_pools=2, workers_per_pool=2)
    await manager.start()
    grinder = WorkGrinder(
        executor_manager=manager, batch_size_threshold=threshold, max_wait_seconds=max_wait
    )
    await grinder.start()
    sizes: list[int] = []
    batches = grinder._batches
    assert batches is not None
    original = batches.start

    def recording(lease: Any, load: Any, items: list[Any], *rest: Any) -> Any:
        sizes.append(len(items))
        return original(lease, load, items, *rest)

    batches.start = recording  # type: ignore[method-assign]
    futures = []
    for i in range(n):
        futures.append(await grinder.enqueue(time.monotonic))
        assert grinder.stats()["pending"] <= i + 1
        if rng.random() < 0.2:
            await asyncio.sleep(rng.random() * max_wait)
    assert grinder.stats()["items_submitted"] == n
    for future in futures:
        await future
    # Pending is exact once everything ran, and no batch exceeded the threshold.
    stats = grinder.stats()
    assert stats["pending"] == 0 and stats["items_completed"] == n, (seed, stats)
    assert sizes and max(sizes) <= threshold, (seed, threshold, sizes)
    assert sum(sizes) == n, (seed, sizes)
    await grinder.stop()
    await manager.stop()
    return len(sizes), n


def test_batching_rule_holds_for_generated_cases(request: pytest.FixtureRequest) -> None:
    batches = items = 0
    for seed in range(25):
        b, n = run(_batching_case(seed))
        batches += b
        items += n
    report(request.config, "properties[batching]", cases=25, items=items, batches=batches,
           invariants_held=3)


def test_an_item_waits_at_most_max_wait_plus_slack() -> None:
    async def case(seed: int) -> list[float]:
        rng = random.Random(seed)
        max_wait = rng.choice([0.02, 0.05, 0.1])
        manager = LeasedExecutorManager(max_pools=1, workers_per_pool=1)
        await manager.start()
        grinder = WorkGrinder(
            executor_manager=manager, batch_size_threshold=1000, max_wait_seconds=max_wait
        )
        await grinder.start()
        delays = []
        for _ in range(rng.randrange(1, 6)):
            enqueued = time.monotonic()
            started = await grinder.submit(time.monotonic)
            delays.append(started - enqueued - max_wait)
        await grinder.stop()
        await manager.stop()
        return delays

    for seed in range(5):
        for over in run(case(seed)):
            assert over <= 1.0, f"seed {seed}: waited {over:.3f}s past max_wait"
            assert over >= -0.005, f"seed {seed}: a lone item ran before max_wait"
