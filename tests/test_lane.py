"""DirectLane: thread submissions served by runners on worker threads.

These drive the lane on its own, with real threads standing in for a
lease's worker threads; ``test_grinder_lane.py`` drives it through the
grinder.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections import Counter
from typing import Any

import pytest

from neoleasepool.grinder.items import ThreadItem
from neoleasepool.grinder.lane import STARVED_LINGERS, DirectLane, LaneRunner
from tests.support import Gate


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
        self.expired: list[bool] = []

    def __call__(self, items: list[ThreadItem], expired: bool) -> None:
        self.batches.append(items)
        self.expired.append(expired)

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


def wait_idle(lane: DirectLane, runners: int) -> None:
    deadline = time.monotonic() + 10
    while lane.idle < runners:
        assert time.monotonic() < deadline, "runners never became idle"
        time.sleep(0.001)


def test_an_offer_is_refused_while_no_runner_serves(lane: DirectLane, sink: Sink) -> None:
    assert lane.offer(item(sink, abs, -1)) is False
    assert lane.offered == 0
    assert lane.stats() == {"lane_runners": 0, "lane_waiting": 0, "items_direct": 0}


def test_an_offer_is_refused_while_the_runner_has_not_started(
    lane: DirectLane, sink: Sink
) -> None:
    # A runner still queued behind a long (or blocked) call must not take
    # items: they would wait behind it, or deadlock a job that waits for them.
    lane.add_runner(10.0, math.inf, always)
    assert lane.is_open
    assert lane.offer(item(sink, abs, -1)) is False


def busy_runner(
    lane: DirectLane, sink: Sink
) -> tuple[threading.Thread, Gate, ThreadItem]:
    """A runner serving in a thread, busy with a gated item (returned)."""
    thread, _ = serving(lane, lane.add_runner(10.0, math.inf, always))
    blocked = Gate("ran")
    wait_idle(lane, 1)
    running = item(sink, blocked)
    assert lane.offer(running)
    assert blocked.started.wait(10)
    return thread, blocked, running


def test_an_offer_is_refused_while_every_runner_is_busy(lane: DirectLane, sink: Sink) -> None:
    thread, blocked, first = busy_runner(lane, sink)
    assert lane.offer(item(sink, abs, -1)) is False, "an item would wait behind a busy runner"
    blocked.opened.set()
    assert first.result(10) == "ran"
    lane.close()
    joined(thread)


def test_idle_runners_run_items_offered_from_many_threads_and_resolve_each(
    lane: DirectLane, sink: Sink, leftovers: Leftovers
) -> None:
    runners = [lane.add_runner(10.0, math.inf, always) for _ in range(4)]
    threads = [serving(lane, runner)[0] for runner in runners]
    wait_idle(lane, 4)
    accepted: list[tuple[int, ThreadItem]] = []
    lock = threading.Lock()

    def offer_some(base: int) -> None:
        for n in range(base, base + 200):
            offered = item(sink, pow, n, 2)
            if lane.offer(offered):
                offered.result(10)  # one at a time, as a blocking caller does
                with lock:
                    accepted.append((n, offered))

    offerers = [threading.Thread(target=offer_some, args=(k * 200,)) for k in range(4)]
    for offerer in offerers:
        offerer.start()
    for offerer in offerers:
        offerer.join()
    lane.close()
    for thread in threads:
        joined(thread)
    assert accepted, "no offer found an idle runner"
    assert all(f.result(0) == n * n for n, f in accepted)
    assert sink.ends == {"completed": len(accepted)}
    assert lane.offered == lane.served == len(accepted)
    assert leftovers.batches == []


def test_a_runner_leaves_once_no_item_came_for_its_linger(lane: DirectLane, sink: Sink) -> None:
    runner = lane.add_runner(0.05, math.inf, always)
    thread, returned = serving(lane, runner)
    joined(thread)
    assert returned == [(0, 0.0)]
    assert lane.runners == 0 and lane.idle == 0
    assert lane.offer(item(sink, abs, -1)) is False, "a lane without runners took an item"


class LosesEveryRace:
    """The lane's queue, as one runner sees it when the others always take
    the items first: its waits end empty."""

    def __init__(self, lane: DirectLane, loser: LaneRunner) -> None:
        self._inner = lane._items
        self._loser = loser
        self._never = threading.Event()

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        if threading.get_ident() == self._loser.thread:
            if block:
                self._never.wait(timeout)
            raise queue.Empty
        return self._inner.get(block, timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_an_idle_runner_stays_while_items_keep_coming_to_other_runners(
    lane: DirectLane, sink: Sink
) -> None:
    # Under the GIL an idle runner can miss every item for a while as other
    # runners take them first; it must not leave while traffic goes on (the
    # lane would shrink to one runner), only once the lane gets no items or
    # after STARVED_LINGERS lingers without an item of its own.
    linger = 0.2
    taker, loser = (lane.add_runner(linger, math.inf, always) for _ in range(2))
    lane._items = LosesEveryRace(lane, loser)  # type: ignore[assignment]
    threads = [serving(lane, runner)[0] for runner in (taker, loser)]
    wait_idle(lane, 2)
    started = time.monotonic()
    rounds = 0
    stayed = 0.0
    while lane.runners == 2:
        stayed = time.monotonic() - started
        assert stayed < 30, "the runner that got no items never left"
        offered = item(sink, abs, -1)
        assert lane.offer(offered)
        assert offered.result(10) == 1
        rounds += 1
        time.sleep(linger / 25)  # paces the traffic
    assert stayed >= STARVED_LINGERS * linger * 0.9, f"it left after {stayed:.2f} s"
    assert loser.left and not taker.left
    assert loser.served == 0 and taker.served == rounds
    for thread in threads:  # no more items: the taker leaves after its linger
        joined(thread)
    assert lane.runners == 0


def test_an_item_offered_just_before_close_still_runs_once(sink: Sink) -> None:
    # Offer and close race the runner's wake-up; whichever wins, the item runs.
    for attempt in range(50):
        leftovers = Leftovers()
        lane = DirectLane(leftovers)
        runner = lane.add_runner(10.0, math.inf, always)
        thread, _ = serving(lane, runner)
        wait_idle(lane, 1)
        offered = item(sink, abs, -attempt)
        assert lane.offer(offered)
        lane.close()
        joined(thread)
        assert offered.result(0) == attempt
        assert leftovers.batches == []
    assert sink.ends == {"completed": 50}


def test_close_with_cancel_cancels_the_item_a_runner_is_running(
    lane: DirectLane, sink: Sink
) -> None:
    thread, blocked, running = busy_runner(lane, sink)
    lane.close(cancel=True)
    assert running.cancelled(), "a cancelling close left a running item to finish"
    blocked.opened.set()
    joined(thread)
    assert sink.ends == {"cancelled": 1}
    with pytest.raises(RuntimeError, match="cancelled"):
        lane.add_runner(10.0, math.inf, always)


def test_items_no_idle_runner_can_take_go_back_in_order(
    lane: DirectLane, sink: Sink, leftovers: Leftovers
) -> None:
    # Promised items outnumber the idle runners once one stops serving (its
    # lease ended, say): the last one out hands them back to the loop.
    runner = lane.add_runner(10.0, math.inf, always)
    with lane._lock:
        lane._idle = 2  # two runners waiting, as far as offers can tell
    held = [item(sink, abs, -n) for n in range(2)]
    assert all(lane.offer(i) for i in held)
    with lane._lock:
        lane._idle = 0  # ...and neither takes them
    lane.leave(runner)
    lane.leave(runner)  # idempotent
    assert leftovers.batches == [held]
    assert not any(i.done() for i in held)
    assert lane.stats()["lane_waiting"] == 0


def test_items_left_after_a_cancelling_close_are_cancelled_not_handed_back(
    lane: DirectLane, sink: Sink, leftovers: Leftovers
) -> None:
    runner = lane.add_runner(10.0, math.inf, always)
    with lane._lock:
        lane._idle = 1
    held = item(sink, abs, -3)
    assert lane.offer(held)
    lane.close(cancel=True)
    lane.leave(runner)
    assert held.cancelled() and leftovers.batches == []
    assert sink.ends == {"cancelled": 1}


def test_a_runner_past_its_reuse_window_takes_no_more_items(
    lane: DirectLane, sink: Sink
) -> None:
    runner = lane.add_runner(10.0, time.monotonic() - 1, always)
    assert lane.serve(runner) == (0, 0.0)
    assert lane.runners == 0


def test_a_runner_whose_lease_ended_leaves_at_once(lane: DirectLane) -> None:
    runner = lane.add_runner(10.0, math.inf, lambda: False)
    started = time.monotonic()
    assert lane.serve(runner) == (0, 0.0)
    assert time.monotonic() - started < 5.0


def test_an_item_its_caller_cancelled_before_its_turn_never_runs(
    lane: DirectLane, sink: Sink
) -> None:
    runner = lane.add_runner(10.0, math.inf, always)
    with lane._lock:
        lane._idle = 1  # promised to a runner that has not woken yet
    calls: list[int] = []
    dropped = item(sink, calls.append, 1)
    assert lane.offer(dropped)
    assert dropped.cancel()
    with lane._lock:
        lane._idle = 0
    lane.close()
    assert lane.serve(runner)[0] == 0
    assert calls == []
    assert sink.ends == {"cancelled": 1}


def test_what_a_callable_raises_fails_only_its_own_item(lane: DirectLane, sink: Sink) -> None:
    runner = lane.add_runner(10.0, math.inf, always)
    thread, _ = serving(lane, runner)

    def exits() -> None:
        raise SystemExit(3)

    outcomes = []
    for fn, args in ((int, ("x",)), (exits, ()), (int, ("7",))):
        wait_idle(lane, 1)
        offered = item(sink, fn, *args)
        assert lane.offer(offered)
        outcomes.append(offered.exception(10) or offered.result(0))
    lane.close()
    joined(thread)
    assert isinstance(outcomes[0], ValueError)
    assert isinstance(outcomes[1], SystemExit)
    assert outcomes[2] == 7
    assert sink.ends == {"failed": 2, "completed": 1}


def test_adding_a_runner_reopens_a_closed_lane(lane: DirectLane, sink: Sink) -> None:
    first = lane.add_runner(10.0, math.inf, always)
    lane.close()
    lane.serve(first)
    assert lane.offer(item(sink, abs, -1)) is False
    second = lane.add_runner(10.0, math.inf, always)
    thread, _ = serving(lane, second)
    wait_idle(lane, 1)
    again = item(sink, abs, -2)
    assert lane.offer(again)
    assert again.result(10) == 2
    lane.close()
    joined(thread)
    assert "closed" in repr(lane) and "runners=0" in repr(lane)


def test_items_left_by_a_runner_whose_lease_ended_are_flagged_expired(
    lane: DirectLane, sink: Sink, leftovers: Leftovers
) -> None:
    # The grinder fails these with LeaseExpiredError, as it fails calls
    # queued on a revoked lease, instead of running them on a new lease.
    live = {"lease": True}
    runner = lane.add_runner(10.0, math.inf, lambda: live["lease"])
    with lane._lock:
        lane._idle = 1  # promised to this runner before it woke
    held = item(sink, abs, -5)
    assert lane.offer(held)
    with lane._lock:
        lane._idle = 0
    live["lease"] = False
    assert lane.serve(runner) == (0, 0.0)
    assert leftovers.batches == [[held]] and leftovers.expired == [True]
