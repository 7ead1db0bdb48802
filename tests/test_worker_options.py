"""neotasker's worker options and return values: ``priority``, ``delay_before``,
``start()`` and the aloop calls returning ``True``."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from neoleasepool import (
    BackgroundAsyncWorker,
    BackgroundEventWorker,
    BackgroundIntervalWorker,
    BackgroundQueueWorker,
    BackgroundWorker,
    TaskSupervisor,
    background_worker,
)

from .support import Runs, started_supervisor

KINDS: list[type[BackgroundWorker]] = [
    BackgroundWorker,
    BackgroundAsyncWorker,
    BackgroundIntervalWorker,
    BackgroundQueueWorker,
    BackgroundEventWorker,
]


@pytest.fixture
def sup() -> Iterator[TaskSupervisor]:
    with started_supervisor("wo", max_threads=8, stop_wait=2.0) as supervisor:
        supervisor.create_aloop("workers", default=True)
        yield supervisor


# --------------------------------------------------------------- priority


@pytest.mark.parametrize("kind", KINDS)
def test_every_worker_kind_takes_priority_and_start_overrides_it(
    sup: TaskSupervisor, kind: type[BackgroundWorker]
) -> None:
    runs = Runs()
    worker = kind("prio", runs, supervisor=sup, priority=5)
    assert worker.priority == 5 and worker.stats()["priority"] == 5
    assert worker.start(_priority=7, extra=1) is True
    assert worker.priority == 7 and worker.stats()["priority"] == 7
    if isinstance(worker, BackgroundQueueWorker):
        worker.put_threadsafe("item")
    elif isinstance(worker, BackgroundEventWorker):
        worker.trigger_threadsafe()
    runs.wait_for(1)
    worker.stop()
    assert runs.kwargs[0]["extra"] == 1 and "_priority" not in runs.kwargs[0]


@pytest.mark.parametrize("bad", ["high", 1.5, True, [1]])
def test_a_priority_that_is_not_an_integer_is_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match="priority must be an integer"):
        BackgroundWorker("bad", print, priority=bad)


def test_decorated_workers_take_priority_too() -> None:
    @background_worker(priority=2, q=True)
    def queued(item: Any, **kwargs: Any) -> None: ...

    assert isinstance(queued, BackgroundQueueWorker) and queued.priority == 2
    assert BackgroundWorker("none", print).priority is None


# ----------------------------------------------------------- delay_before


def test_delay_before_pauses_before_the_first_run(sup: TaskSupervisor) -> None:
    runs = Runs()
    worker = BackgroundIntervalWorker(
        "db", runs, interval=60, delay_before=0.15, supervisor=sup
    )
    began = time.monotonic()
    worker.start()
    runs.wait_for(1)
    worker.stop()
    assert runs.times[0] - began >= 0.14
    assert worker.delay_before == 0.15


def test_delay_before_pauses_before_each_run_with_delay(sup: TaskSupervisor) -> None:
    runs = Runs()
    worker = BackgroundIntervalWorker(
        "db2", runs, delay=0.02, delay_before=0.08, supervisor=sup
    )
    worker.start()
    runs.wait_for(3)
    worker.stop()
    gaps = [b - a for a, b in zip(runs.times, runs.times[1:], strict=False)]
    assert all(gap >= 0.095 for gap in gaps), gaps


def test_with_interval_delay_before_shifts_runs_without_slowing_the_rate(
    sup: TaskSupervisor,
) -> None:
    runs = Runs()
    worker = BackgroundIntervalWorker(
        "db3", runs, interval=0.2, delay_before=0.1, supervisor=sup
    )
    began = time.monotonic()
    worker.start()
    runs.wait_for(3)
    worker.stop()
    assert all(t - began >= 0.1 + k * 0.2 - 0.005 for k, t in enumerate(runs.times))
    assert (runs.times[2] - runs.times[0]) / 2 < 0.27  # 0.2, not 0.2 + 0.1


def test_stop_ends_the_pause_at_once_and_the_target_never_runs(sup: TaskSupervisor) -> None:
    runs = Runs()
    worker = BackgroundIntervalWorker(
        "db4", runs, interval=1, delay_before=3600, supervisor=sup
    )
    worker.start()
    began = time.monotonic()
    worker.stop()
    assert time.monotonic() - began < 2
    assert worker.is_stopped() and runs.times == []


def test_triggers_merge_into_one_run_which_pauses_first(sup: TaskSupervisor) -> None:
    runs, clock = Runs(), Runs()
    worker = BackgroundIntervalWorker(
        "db5", runs, interval=3600, delay_before=0.1, supervisor=sup
    )
    ticker = BackgroundIntervalWorker("clock", clock, interval=0.02, supervisor=sup)
    ticker.start()
    worker.start()
    runs.wait_for(1)
    worker.trigger_threadsafe()
    worker.trigger_threadsafe()  # two triggers, one run (after its pause)
    runs.wait_for(2)
    clock.wait_for(len(clock.times) + 15)  # 0.3 s more of a sibling's ticks
    assert len(runs.times) == 2
    assert runs.times[1] - runs.times[0] >= 0.095  # triggered runs pause too
    worker.trigger_threadsafe(skip=True)  # restarts the period, without a run
    clock.wait_for(len(clock.times) + 15)
    assert len(runs.times) == 2
    worker.stop()
    ticker.stop()


def test_a_trigger_during_the_pause_is_merged_into_its_run(sup: TaskSupervisor) -> None:
    runs, clock = Runs(), Runs()
    ticker = BackgroundIntervalWorker("clock2", clock, interval=0.02, supervisor=sup)
    ticker.start()
    worker = BackgroundIntervalWorker(
        "db7", runs, interval=3600, delay_before=0.3, supervisor=sup
    )
    began = time.monotonic()
    worker.start()
    worker.trigger_threadsafe()  # during the first pause: merged into its run
    runs.wait_for(1)
    assert runs.times[0] - began >= 0.29
    clock.wait_for(len(clock.times) + 20)  # 0.4 s more of a sibling's ticks
    assert len(runs.times) == 1
    worker.stop()
    ticker.stop()


def test_start_delay_before_overrides_and_bad_values_are_refused(sup: TaskSupervisor) -> None:
    runs = Runs()
    worker = BackgroundIntervalWorker("db6", runs, interval=60, supervisor=sup)
    assert worker.delay_before == 0
    worker.start(_delay_before=0.05)
    runs.wait_for(1)
    worker.stop()
    assert worker.delay_before == 0.05 and "_delay_before" not in runs.kwargs[0]
    for bad in (-1, float("inf"), "1", True):
        with pytest.raises(ValueError, match="delay_before must be"):
            BackgroundIntervalWorker("bad", runs, delay_before=bad)


# ---------------------------------------------------------- return values


def test_start_returns_true_then_false_while_running(sup: TaskSupervisor) -> None:
    for kind in KINDS:
        worker = kind(f"ret-{kind.__name__}", lambda *a, **k: None, supervisor=sup)
        assert worker.start() is True
        assert worker.start() is False
        assert worker.restart() is True
        worker.stop()
        assert worker.wait_until_stop(timeout=5) is True
        assert worker.start() is True
        worker.stop()


def test_wait_until_stop_returns_when_the_loop_has_exited(sup: TaskSupervisor) -> None:
    release = threading.Event()

    async def blocked(**kwargs: Any) -> bool:
        await asyncio.get_running_loop().run_in_executor(None, release.wait, 10)
        return False  # stops the worker

    worker = BackgroundAsyncWorker("wus", blocked, supervisor=sup)
    assert worker.wait_until_stop() is True  # never started
    worker.start()
    assert worker.wait_until_stop(timeout=0.05) is False
    release.set()
    assert worker.wait_until_stop(timeout=10) is True


def test_aloop_and_scheduler_calls_return_what_neotasker_returns(sup: TaskSupervisor) -> None:
    sup.create_aloop("later", start=False)
    assert sup.start_aloop("later") is True
    assert sup.start_aloop("later") is True  # running already: still True
    assert sup.stop_aloop("later") is True
    with pytest.raises(ValueError, match="no aloop named"):
        sup.start_aloop("missing")
    with pytest.raises(ValueError, match="no aloop named"):
        sup.stop_aloop("missing")

    class Sync:
        name = "sync-scheduler"

        def stop(self, wait: bool | float = True) -> None: ...

    scheduler = Sync()
    assert sup.register_sync_scheduler(scheduler) is True
    assert sup.unregister_scheduler(scheduler) is True
    assert sup.unregister_sync_scheduler(scheduler) is False
