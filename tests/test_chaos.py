"""Chaos: thousands of items through supervised grinders while a driver
thread injects faults.

Faults: worker processes killed from inside an item (``os._exit``) and
from outside (SIGKILL of a worker pid), items that hang past their time
limit, items cancelled (queued ones, and hung ones while they run), worker
processes recycled every few calls, leases of a second
manager left to expire under holders that outlive them, the size provider
flipped (negative, NaN, huge, raising), and ``notify_scale_changed()``
called from other threads.  At the end: every future ended exactly once,
every item not cancelled or crashed returned its correct result, the
manager is back at its target size, and the counts in ``stats()`` match
what happened.  The figures are printed (see ``tests/figures.py``).
"""

from __future__ import annotations

import concurrent.futures
import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from neoleasepool import (
    ItemTimeoutError,
    LeaseExpiredError,
    TaskSupervisor,
    WorkerDiedError,
    time_limited,
)

from .chaos_work import compute, crash_or_compute, fail_with, sleep_then
from .figures import report
from .resources import mp_children
from .support import wait_until

ITEMS = {"thread": 3000, "process": 1500}
SEED = int(os.environ.get("CHAOS_SEED", "7"))


class EndCounter:
    """Counts how often each future ends (its done-callbacks run)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.ends: dict[int, int] = {}

    def watch(self, future: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self.ends[id(future)] = 0
        future.add_done_callback(self._ended)

    def _ended(self, future: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self.ends[id(future)] += 1


class SizeSignal:
    """A size provider the driver flips between good and hostile values."""

    VALUES: tuple[Any, ...] = (0, 5, 25, 40, -3, float("nan"), 10**100, "many", "raise")

    def __init__(self) -> None:
        self.value: Any = 25

    def __call__(self) -> Any:
        value = self.value
        if value == "raise":
            raise RuntimeError("size provider down")
        return value


@pytest.fixture
def sup(request: pytest.FixtureRequest) -> Iterator[TaskSupervisor]:
    supervisor = TaskSupervisor(id=f"chaos-{request.node.name}")
    supervisor.set_thread_pool(max_size=4)
    supervisor.start()
    try:
        yield supervisor
    finally:
        supervisor.stop(wait=30)


def _hold_expiring_leases(short: Any, rounds: int, figures: dict[str, int]) -> None:
    """Acquire leases and outlive them: each must be revoked, then refuse work."""
    for _ in range(rounds):
        lease = short.acquire(lease_seconds=0.05, owner="outliver")
        try:
            assert lease.executor.submit(compute, 2).result(30) == compute(2)
        except concurrent.futures.BrokenExecutor:
            pass  # the driver SIGKILLed this pool's worker: a fault of its own
        except concurrent.futures.CancelledError:
            # Revoked before a worker took the call (a process pool's first
            # worker may start later than 0.05 s): the retired pool's
            # shutdown cancelled it, as ProcessPoolExecutor's does.
            pass
        wait_until(lambda lease=lease: not lease.active, timeout=30)
        with pytest.raises(LeaseExpiredError):
            lease.executor.submit(compute, 3)
        lease.release()  # idempotent after revocation
        figures["leases_expired"] += 1


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_chaos_every_item_ends_once_with_the_right_outcome(
    sup: TaskSupervisor, backend: str, request: pytest.FixtureRequest
) -> None:
    rng = random.Random(SEED)
    n = ITEMS[backend]
    size = SizeSignal()
    process = backend == "process"
    recycling: dict[str, Any] = {"max_tasks_per_child": 40} if process else {}
    pool = sup.create_lease_manager(
        "cpu", backend=backend, max_pools=3, min_pools=1, units_per_pool=10,
        workers_per_pool=2, size_provider=size, check_interval=0.2, **recycling,
    )
    short = sup.create_lease_manager(
        "short", backend=backend, max_pools=1, workers_per_pool=1, lease_grace_seconds=0,
    )
    grinder = sup.create_work_grinder("g", pool, batch_size_threshold=20, max_wait_seconds=0.01)
    crash_at = set(rng.sample(range(n), 6)) if process else set()
    fail_at = set(rng.sample(range(n), 30)) - crash_at
    # Items that hang past a time limit (a process worker is stopped; a
    # thread runs on for a second), and timed items that finish in time.
    hang_at = set(rng.sample(range(n), 8)) - crash_at - fail_at
    timed_at = set(rng.sample(range(n), 40)) - crash_at - fail_at - hang_at
    hang = time_limited(sleep_then, 0.3)
    hang_seconds = 30.0 if process else 1.0
    figures = dict.fromkeys(
        ("crashes_inside", "sigkills", "cancels", "running_cancels", "size_flips", "notifies",
         "leases_expired"), 0,
    )
    counter = EndCounter()
    futures: list[concurrent.futures.Future[Any]] = []
    cancelled_futures: set[int] = set()
    hung: list[concurrent.futures.Future[Any]] = []
    fed = threading.Event()

    def feed() -> None:
        for i in range(n):
            if i in fail_at:
                future = grinder.enqueue(fail_with, i)
            elif i in hang_at:
                future = grinder.enqueue(hang, hang_seconds, i)
                hung.append(future)
            elif i in timed_at:
                future = grinder.enqueue(time_limited(compute, 60), i)
            else:
                future = grinder.enqueue(crash_or_compute, i, i in crash_at)
            counter.watch(future)
            futures.append(future)
            if i % 10 == 9:
                fed.wait(0.003)  # pace the feed so faults land mid-load
        fed.set()

    done = threading.Event()

    def notifier() -> None:
        while not done.wait(0.01):
            pool.notify_scale_changed()
            figures["notifies"] += 1

    def drive() -> None:
        while not done.wait(0.01):
            action = rng.random()
            if action < 0.03 and hung:
                # A hung item, likely running: its worker (process) is stopped.
                target = rng.choice(hung)
                if target.cancel():
                    cancelled_futures.add(id(target))
                    figures["cancels"] = len(cancelled_futures)
                    figures["running_cancels"] += 1
            elif action < 0.4 and futures:
                # The newest items are the likeliest still queued.
                # cancel() of an already cancelled future is True again:
                # count each future once.
                target = futures[max(0, len(futures) - 1 - rng.randrange(100))]
                if target.cancel():
                    cancelled_futures.add(id(target))
                    figures["cancels"] = len(cancelled_futures)
            elif action < 0.6:
                size.value = rng.choice(SizeSignal.VALUES)
                figures["size_flips"] += 1
            elif action < 0.65 and process and figures["sigkills"] < 4:
                workers = sorted(mp_children())
                if workers:
                    try:
                        os.kill(rng.choice(workers), signal.SIGKILL)
                        figures["sigkills"] += 1
                    except ProcessLookupError:
                        pass

    threads = [
        threading.Thread(target=feed, name="chaos-feed"),
        threading.Thread(target=notifier, name="chaos-notify"),
        threading.Thread(target=drive, name="chaos-drive"),
    ]
    for thread in threads:
        thread.start()
    try:
        _hold_expiring_leases(short, 5, figures)
        assert fed.wait(120), "the feeder did not finish"
        # concurrent.futures.wait() also proves cancelled items notify waiters.
        _, stuck = concurrent.futures.wait(futures, timeout=120)
        assert not stuck, f"{len(stuck)} item(s) never ended"
    finally:
        done.set()
        for thread in threads:
            thread.join(30)
    figures["crashes_inside"] = len(crash_at)

    # Every future ended exactly once.
    assert len(futures) == n and all(f.done() for f in futures)
    wait_until(lambda: sum(counter.ends.values()) == n, timeout=10)
    assert set(counter.ends.values()) == {1}

    # Each item not cancelled or crashed returned its correct result.
    results = cancelled = crashed = failed = timed_out = 0
    for i, future in enumerate(futures):
        if future.cancelled():
            cancelled += 1
            continue
        exc = future.exception()
        if isinstance(exc, concurrent.futures.BrokenExecutor):
            assert process, f"item {i}: a thread pool cannot break"
            # Our pool: a dead worker fails only what it ran, not its pool.
            assert isinstance(exc, WorkerDiedError), (i, exc)
            crashed += 1
        elif i in hang_at:
            assert isinstance(exc, ItemTimeoutError), (i, exc)
            timed_out += 1
        elif i in fail_at:
            assert isinstance(exc, ValueError) and exc.args == (i,), (i, exc)
            failed += 1
        else:
            assert i not in crash_at, f"item {i} should have crashed its worker"
            assert exc is None, (i, exc)
            assert future.result() == compute(i)
            results += 1
    # A crash costs only the call its worker ran: one chunk, at most a
    # batch (``batch_size_threshold``) of items, never the pool's queue.
    crash_events = len(crash_at) + figures["sigkills"]
    if crashed > 20 * crash_events:  # say how the items failed, for the CI log
        kinds = Counter(repr(f.exception())[:120] for f in futures if not f.cancelled())
        raise AssertionError(
            f"{crashed} items died with their worker in {crash_events} crashes\n"
            f"failures: {kinds.most_common(6)}\nfigures: {figures}\n"
            f"manager: {pool.stats()}\ngrinder: {grinder.stats()}"
        )

    # The grinder's counts match what happened.  An item counts itself as
    # its future reaches its final state, just after that state becomes
    # visible: give the last few ends a moment to be counted.
    expected = (results, failed + crashed + timed_out, cancelled, 0, 0)
    wait_until(
        lambda: (lambda s: (
            s["items_completed"], s["items_failed"], s["items_cancelled"], s["pending"],
            s["running"],
        ))(grinder.stats(timeout=30)) == expected,
        timeout=10,
    )
    stats = grinder.stats(timeout=30)
    assert stats["pending"] == 0 and stats["running"] == 0
    assert stats["items_submitted"] == n
    assert stats["items_completed"] == results
    assert stats["items_failed"] == failed + crashed + timed_out
    assert stats["items_timed_out"] == timed_out
    wait_until(lambda: grinder.stats(timeout=30)["items_overdue"] == 0, timeout=30)
    assert stats["items_cancelled"] == cancelled == figures["cancels"]

    # The manager is back at its target size; its lease counts add up.
    size.value = 25
    pool.notify_scale_changed()
    try:
        wait_until(
            lambda: (s := pool.stats())["total"] == s["target"] == s["desired"] == 3
            and s["leased"] == 0 and s["available"] == 3,
            timeout=60,
        )
    except AssertionError as exc:  # say what was left, for whoever reads the CI log
        left = f"manager: {pool.stats()}\ngrinder: {grinder.stats()}"
        raise AssertionError(f"{exc}\n{left}") from None
    for manager in (pool, short):
        s = manager.stats()
        assert s["leases_granted"] == s["leases_released"] + s["leases_revoked"] + s["leased"]
    assert short.stats()["leases_revoked"] == figures["leases_expired"] == 5

    # And it still works.
    assert grinder.submit(compute, 11, timeout=60) == compute(11)
    report(
        request.config, f"chaos[{backend}]", items=n, results=results, failed=failed,
        crashed=crashed, timed_out=timed_out, cancelled=cancelled,
        faults=sum(figures.values()) - figures["notifies"],
        **figures, invariants_held=6,
    )


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_a_revoked_lease_fails_its_queued_items_instead_of_cancelling_them(
    sup: TaskSupervisor, backend: str
) -> None:
    pool = sup.create_lease_manager(
        "short", backend=backend, max_pools=1, workers_per_pool=1, lease_grace_seconds=0,
    )
    grinder = sup.create_work_grinder(
        "g", pool, batch_size_threshold=4, max_wait_seconds=0.01, lease_seconds=0.3,
        chunk_size=1,
    )
    futures = [grinder.enqueue(sleep_then, 0.6, i) for i in range(4)]
    concurrent.futures.wait(futures, timeout=60)
    queued = futures[1:]  # behind the first call when the lease was revoked
    for future in queued:
        assert not future.cancelled(), "the caller never cancelled this item"
        assert isinstance(future.exception(), LeaseExpiredError)
    stats = grinder.stats()
    assert stats["items_cancelled"] == 0
    assert stats["items_failed"] >= len(queued)
    assert pool.stats()["leases_revoked"] >= 1
    # The same grinder and manager keep working.  With 0.3 s leases and no
    # grace, a batch that lands on a freshly started process pool may be
    # revoked again on a loaded machine (starting a worker process can take
    # longer than the lease): that is the rule working, so try until a
    # deadline rather than a number of times.
    deadline = time.monotonic() + 60
    revoked = 0
    while time.monotonic() < deadline:
        try:
            assert grinder.submit(compute, 4, timeout=60) == compute(4)
            break
        except LeaseExpiredError:
            revoked += 1
    else:
        pytest.fail(f"no item succeeded within 60 s after the revocation ({revoked} revoked)")


def test_a_crashed_batcher_is_logged_and_fails_queued_and_new_items(
    sup: TaskSupervisor, caplog: pytest.LogCaptureFixture
) -> None:
    pool = sup.create_lease_manager("cpu", backend="thread", max_pools=1, workers_per_pool=1)
    grinder = sup.create_work_grinder("g", pool, batch_size_threshold=100, max_wait_seconds=30)
    queued = [grinder.enqueue(compute, i) for i in range(3)]
    wait_until(lambda: grinder.stats()["pending"] == 3)

    def boom() -> list[Any]:
        raise RuntimeError("batcher bug")

    grinder.grinder._pipeline._take = boom  # type: ignore[method-assign]
    with caplog.at_level("ERROR", logger="neoleasepool.grinder"):
        grinder.enqueue(compute, 3)  # wakes the batcher: a batch of threshold
        for i in range(96):
            grinder.enqueue(compute, 4 + i)
        wait_until(lambda: all(f.done() for f in queued), timeout=30)
    assert "batcher crashed" in caplog.text
    for future in queued:
        assert "batcher crashed" in str(future.exception())
    with pytest.raises(RuntimeError, match="batcher crashed"):
        grinder.enqueue(compute, 1)
    stats = grinder.stats()
    assert stats["items_submitted"] == stats["items_failed"] + stats["items_completed"]
