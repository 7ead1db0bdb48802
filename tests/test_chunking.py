"""The chunk planner's sizing rule, with measurements fed in directly."""

from __future__ import annotations

import pytest

from neoleasepool.grinder.chunking import DEFAULT_TARGET_SECONDS, ChunkPlanner


def test_runs_one_item_per_call_before_any_measurement() -> None:
    assert ChunkPlanner(None).chunk_size(50, 2) == 1


def test_a_batch_with_little_work_in_all_runs_as_one_chunk() -> None:
    planner = ChunkPlanner(None)
    planner.observe(10, 10 * 1e-6)  # 1 us per item: 50 items are 50 us of work
    assert planner.chunk_size(50, 2) == 50


def test_groups_items_to_the_target_and_spreads_over_workers() -> None:
    planner = ChunkPlanner(None)
    planner.observe(1, 0.0005)  # 0.5 ms per item: 25 ms for 50 items
    assert planner.chunk_size(50, 2) == int(DEFAULT_TARGET_SECONDS / 0.0005)
    # never fewer chunks than workers when there is enough work to split
    planner.observe(1000, 1000 * 0.00005)
    assert planner.chunk_size(100, 4) <= 25


def test_items_slower_than_the_target_run_one_per_call() -> None:
    planner = ChunkPlanner(None)
    planner.observe(1, 0.02)
    assert planner.chunk_size(16, 4) == 1


@pytest.mark.parametrize(("fixed", "items", "expected"), [(8, 50, 8), (8, 3, 3), (1, 10, 1)])
def test_a_fixed_chunk_size_wins_over_measurement(fixed: int, items: int, expected: int) -> None:
    planner = ChunkPlanner(fixed)
    planner.observe(1, 1e-6)
    assert planner.chunk_size(items, 4) == expected
    assert planner.fixed == fixed


def test_the_average_follows_recent_measurements() -> None:
    planner = ChunkPlanner(None)
    planner.observe(1, 0.001)
    planner.observe(1, 0.003)
    avg = planner.avg_item_seconds
    assert avg is not None and 0.001 < avg < 0.003
