"""DirectLane: thread submissions served by runners on worker threads.

These drive the lane on its own, with real threads standing in for a
lease's worker threads; ``test_grinder_lane.py`` drives it through the
grinder.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from typing import Any

import pytest

from neoleasepool._items import ThreadItem
from neoleasepool._lane import DirectLane, LaneRunner


class Sink:
    """Records how items ended, as the grinder counts them."""

    def __init__(self) -> None:
        self.ends: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _item_cancelled(self, item: Any) -> None:
        pass

    def _item_cancelled_threadsafe(self, item: Any) -> None:
        pass

    def _item_ended(self, how: str) -> None:
        with self._lock:
            self.ends[how] += 1


class Leftovers:
    def __init__(self) -> None:
        self.batches: list[list[ThreadItem]] = []

    def __call__(self, items: list[ThreadItem]) -> None:
        self.batches.append(items)

    @property
    def items(self) -> list[ThreadItem]:
        return [item for batch in self.batches for item in batch]


@pytest.fixture
def sink() -> Sink:
    return Sink()


@pytest.fixture
def leftovers() -> Leftovers:
    return Leftovers()


@pytest.fixture
def lane(leftovers: Leftovers) -> DirectLane:
    return DirectLane(leftovers)


def item(sink: Sink, fn: Any, *args: Any) -> ThreadItem:
    return ThreadItem(sink, fn, args, {})


def always() -> bool:
    return True


def serving(lane: DirectLane, runner: LaneRunner) -> tuple[threading.Thread, list[Any]]:
    """Run ``lane.serve(runner)`` in a thread; its return value lands in the list."""
    returned: list[Any] = []
    thread = threading.Thread(target=lambda: returned.append(lane.serve(runner)))
    thread.start()
    return thread, returned


def joined(thread: threading.Thread) -> None:
    thread.join(10)
    assert not thread.is_alive(), "the runner did not leave"


def test_an_offer_is_refused_while_no_runner_serves(lane: DirectLane, sink: Sink) -> None:
    assert lane.offer(item(sink, abs, -1)) is False
    assert lane.offered == 0
    assert lane.stats() == {"lane_runners": 0, "lane_waiting": 0, "items_direct": 0}


def test_a_runner_runs_items_offered_from_many_threads_and_resolves_each(
    lane: DirectLane, sink: Sink, leftovers: Leftovers
) -> None:
    runner = lane.add_runner(10.0, math.inf, always)
    thread, returned = serving(lane, runner)
    futures: list[ThreadItem] = []
    lock = threading.Lock()

    def offer_some(base: int) -> None:
        for n in range(base, base + 50):
            offered = item(sink, pow, n, 2)
            assert lane.offer(offered)
            with lock:
                futures.append(offered)

    offerers = [threading.Thread(target=offer_some, args=(k * 50,)) for k in range(4)]
    for offerer in offerers:
        offerer.start()
    for offerer in offerers:
        offerer.join()
    results = sorted(f.result(timeout=10) for f in futures)
    lane.close()
    joined(thread)
    assert results == sorted(n * n for n in range(200))
    assert returned[0][0] == 200
    assert sink.ends == {"completed": 200}
    assert lane.offered == 200 and lane.served == 200
    assert leftovers.batches == []


def test_a_runner_leaves_once_no_item_came_for_its_linger(lane: DirectLane, sink: Sink) -> None:
    runner = lane.add_runner(0.05, math.inf, always)
    thread, returned = serving(lane, runner)
    joined(thread)
    assert returned == [(0, 0.0)]
    assert lane.runners == 0
    assert lane.offer(item(sink, abs, -1)) is False, "a lane without runners took an item"


def test_close_refuses_offers_and_runners_finish_what_the_lane_holds(
    lane: DirectLane, sink: Sink, leftovers: Leftovers
) -> None:
    runner = lane.add_runner(10.0, math.inf, always)
    held = [item(sink, pow, n, 3) for n in range(10)]
    assert all(lane.offer(i) for i in held)
    lane.close()
    assert lane.offer(item(sink, abs, -1)) is False
    started = time.monotonic()
    assert lane.serve(runner)[0] == 10
    assert time.monotonic() - started < 5.0, "a closed lane's runner waited for its linger"
    assert [i.result(0) for i in held] == [n**3 for n in range(10)]
    assert leftovers.batches == []


def test_close_with_cancel_cancels_the_items_the_lane_holds_once(
    lane: DirectLane, sink: Sink
) -> None:
    runner = lane.add_runner(10.0, math.inf, always)
    calls: list[int] = []
    held = [item(sink, calls.append, n) for n in range(5)]
    for i in held:
        lane.offer(i)
    held[0].cancel()  # the caller got there first: still counted once
    lane.close(cancel=True)
    assert lane.serve(runner) == (0, 0.0)
    assert all(i.cancelled() for i in held)
    assert calls == []
    assert sink.ends == {"cancelled": 5}


def test_items_still_running_when_a_cancelling_close_comes_end_cancelled(
    lane: DirectLane, sink: Sink
) -> None:
    runner = lane.add_runner(10.0, math.inf, always)
    inside, release = threading.Event(), threading.Event()

    def blocked() -> str:
        inside.set()
        assert release.wait(10)
        return "ran"

    running = item(sink, blocked)
    lane.offer(running)
    thread, _ = serving(lane, runner)
    assert inside.wait(10)
    lane.close(cancel=True)
    release.set()
    joined(thread)
    assert running.cancelled()
    assert sink.ends == {"cancelled": 1}


def test_the_last_runner_to_leave_hands_what_is_left_back_in_order(
    lane: DirectLane, sink: Sink, leftovers: Leftovers
) -> None:
    active = {"lease": True}
    runner = lane.add_runner(10.0, math.inf, lambda: active["lease"])
    held = [item(sink, abs, -n) for n in range(3)]
    for i in held:
        assert lane.offer(i)
    active["lease"] = False  # its lease ended: the runner must not run them
    assert lane.serve(runner) == (0, 0.0)
    assert leftovers.items == held
    assert not any(i.done() for i in held)
    assert lane.offer(item(sink, abs, -1)) is False


def test_a_runner_past_its_reuse_window_takes_no_more_items(
    lane: DirectLane, sink: Sink, leftovers: Leftovers
) -> None:
    runner = lane.add_runner(10.0, time.monotonic() - 1, always)
    held = item(sink, abs, -4)
    lane.offer(held)
    assert lane.serve(runner) == (0, 0.0)
    assert leftovers.items == [held]


def test_a_runner_past_its_reuse_window_still_drains_a_closed_lane(
    lane: DirectLane, sink: Sink, leftovers: Leftovers
) -> None:
    # A draining stop closes the lane; its items must run, not go back to a
    # loop that no longer forms batches.
    runner = lane.add_runner(10.0, time.monotonic() - 1, always)
    held = item(sink, abs, -4)
    lane.offer(held)
    lane.close()
    assert lane.serve(runner)[0] == 1
    assert held.result(0) == 4
    assert leftovers.batches == []


def test_leftovers_wait_for_the_last_runner(
    lane: DirectLane, sink: Sink, leftovers: Leftovers
) -> None:
    first = lane.add_runner(10.0, time.monotonic() - 1, always)
    second = lane.add_runner(10.0, math.inf, always)
    held = item(sink, abs, -5)
    lane.offer(held)
    lane.serve(first)  # leaves at once; another runner still serves
    assert leftovers.batches == []
    lane.close()
    assert lane.serve(second)[0] == 1
    assert held.result(0) == 5
    assert leftovers.batches == []


def test_a_runner_that_never_ran_leaves_once_through_leave(
    lane: DirectLane, sink: Sink, leftovers: Leftovers
) -> None:
    runner = lane.add_runner(10.0, math.inf, always)
    held = item(sink, abs, -6)
    lane.offer(held)
    lane.leave(runner)  # e.g. its future was cancelled before it started
    lane.leave(runner)
    assert lane.runners == 0
    assert leftovers.batches == [[held]]


def test_an_item_its_caller_cancelled_in_the_lane_never_runs(
    lane: DirectLane, sink: Sink
) -> None:
    runner = lane.add_runner(10.0, math.inf, always)
    calls: list[int] = []
    dropped, kept = item(sink, calls.append, 1), item(sink, calls.append, 2)
    lane.offer(dropped)
    lane.offer(kept)
    assert dropped.cancel()
    lane.close()
    assert lane.serve(runner)[0] == 1
    assert calls == [2]
    assert sink.ends == {"cancelled": 1, "completed": 1}


def test_what_a_callable_raises_fails_only_its_own_item(lane: DirectLane, sink: Sink) -> None:
    runner = lane.add_runner(10.0, math.inf, always)

    def exits() -> None:
        raise SystemExit(3)

    bad, worse, good = item(sink, int, "x"), item(sink, exits), item(sink, int, "7")
    for i in (bad, worse, good):
        lane.offer(i)
    lane.close()
    assert lane.serve(runner)[0] == 3
    assert isinstance(bad.exception(0), ValueError)
    assert isinstance(worse.exception(0), SystemExit)
    assert good.result(0) == 7
    assert sink.ends == {"failed": 2, "completed": 1}


def test_adding_a_runner_reopens_a_closed_lane(lane: DirectLane, sink: Sink) -> None:
    first = lane.add_runner(10.0, math.inf, always)
    lane.close()
    lane.serve(first)
    assert lane.offer(item(sink, abs, -1)) is False
    second = lane.add_runner(10.0, math.inf, always)
    again = item(sink, abs, -2)
    assert lane.offer(again)
    lane.close()
    lane.serve(second)
    assert again.result(0) == 2
    assert "closed" in repr(lane) and "runners=0" in repr(lane)
