"""Async jobs: neotasker's lightweight interval coroutines, run by job schedulers."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import neoleasepool
from neoleasepool import (
    AsyncJob,
    AsyncJobScheduler,
    LeasePoolNotStartedError,
    TaskSupervisor,
    WrongLoopError,
    task_supervisor,
)

from .support import AsyncRuns as Runs
from .support import started_supervisor, wait_until


@pytest.fixture
def sup() -> Iterator[TaskSupervisor]:
    with started_supervisor("jobs", max_threads=4, stop_wait=5.0) as supervisor:
        supervisor.create_aloop("jobs", default=True)
        yield supervisor


# ------------------------------------------------------------- timetable


def test_a_job_runs_at_a_fixed_rate_on_its_aloop(sup: TaskSupervisor) -> None:
    scheduler = sup.create_async_job_scheduler("default", default=True)
    runs = Runs()

    async def slowish() -> None:
        runs.note()
        await asyncio.sleep(0.06)  # a rate kept from run starts, not run ends

    created = time.monotonic()
    job = sup.create_async_job(target=slowish, interval=0.08)
    runs.wait_for(4)
    assert isinstance(job, AsyncJob) and job.active and job.scheduler is scheduler
    # Never early (the timetable counts from creation), and not 0.08 + 0.06
    # apart: a late timer does not push the ones after it.
    assert all(t - created >= k * 0.08 - 0.005 for k, t in enumerate(runs.times))
    assert (runs.times[3] - runs.times[0]) / 3 < 0.12
    assert runs.threads[0] == "supervisor_aloop_jobs"
    job.cancel()


def test_args_and_kwargs_reach_the_target(sup: TaskSupervisor) -> None:
    sup.create_async_job_scheduler("default", default=True)
    got: list[tuple[Any, ...]] = []
    done = threading.Event()

    async def target(a: int, b: int, *, c: int) -> None:
        got.append((a, b, c))
        done.set()

    sup.create_async_job(target=target, args=(1, 2), kwargs={"c": 3}, interval=60)
    assert done.wait(10)
    assert got == [(1, 2, 3)]


def test_timer_delays_the_first_run_and_is_the_interval_by_default(
    sup: TaskSupervisor,
) -> None:
    sup.create_async_job_scheduler("default", default=True)
    runs = Runs()
    created = time.monotonic()
    job = sup.create_async_job(target=runs, timer=0.15)
    runs.wait_for(2)
    job.cancel()
    assert job.interval == pytest.approx(0.15)
    assert runs.times[0] - created >= 0.14
    assert runs.times[1] - created >= 0.29


def test_number_ends_the_job_after_that_many_runs(sup: TaskSupervisor) -> None:
    scheduler = sup.create_async_job_scheduler("default", default=True)
    limited, clock = Runs(), Runs()
    job = sup.create_async_job(target=limited, interval=0.02, number=3)
    sup.create_async_job(target=clock, interval=0.02)
    wait_until(lambda: job.state == "finished")
    clock.wait_for(len(clock.times) + 5)  # five more ticks of a sibling job
    assert len(limited.times) == 3 and job.runs == 3 and not job.active
    assert job not in scheduler.jobs()
    assert scheduler.stats()["jobs_finished"] == 1


def test_a_new_job_runs_at_once_while_another_waits_a_long_interval(
    sup: TaskSupervisor,
) -> None:
    # Event-driven: the scheduler does not sleep until the earliest due time.
    sup.create_async_job_scheduler("default", default=True)
    slow, fast = Runs(), Runs()
    sup.create_async_job(target=slow, interval=3600)
    slow.wait_for(1)
    created = time.monotonic()
    sup.create_async_job(target=fast, interval=3600)
    fast.wait_for(1)
    assert fast.times[0] - created < 1.0
    stats = sup.stats()["async_job_schedulers"][0]["jobs"][0]
    assert 3500 < stats["next_run_in"] <= 3600


def test_ticks_missed_while_the_loop_was_blocked_are_skipped_not_burst(
    sup: TaskSupervisor,
) -> None:
    sup.create_async_job_scheduler("default", default=True)
    ticks = Runs()
    unblocked = threading.Event()

    async def hog() -> None:
        time.sleep(0.3)  # blocks the loop: what a bad job does
        unblocked.set()

    job = sup.create_async_job(target=ticks, interval=0.05)
    ticks.wait_for(1)
    sup.create_async_job(target=hog, interval=60, number=1)
    assert unblocked.wait(10)
    after = len(ticks.times)
    ticks.wait_for(after + 3)
    job.cancel()
    # About six ticks passed while the loop was blocked: they are counted,
    # not run back to back afterwards.
    assert job.skipped >= 3
    assert ticks.times[after + 2] - ticks.times[after] >= 0.05


# ------------------------------------------------------- overlap and errors


def test_runs_overlap_by_default_and_not_with_overlap_false(sup: TaskSupervisor) -> None:
    sup.create_async_job_scheduler("default", default=True)
    release = threading.Event()

    async def stuck() -> None:
        while not release.is_set():
            await asyncio.sleep(0.005)

    overlapping = sup.create_async_job(target=stuck, interval=0.02)
    single = sup.create_async_job(target=stuck, interval=0.02, overlap=False)
    wait_until(lambda: overlapping.running >= 3 and single.skipped >= 3)
    assert single.runs == 1 and single.running == 1
    release.set()
    wait_until(lambda: single.runs >= 2)
    overlapping.cancel()
    single.cancel()


def test_a_failing_run_is_counted_and_logged_and_the_job_goes_on(
    sup: TaskSupervisor, caplog: pytest.LogCaptureFixture
) -> None:
    sup.create_async_job_scheduler("default", default=True)

    async def boom() -> None:
        raise KeyError("secret")

    with caplog.at_level(logging.ERROR, logger="neoleasepool.jobs"):
        job = sup.create_async_job(target=boom, interval=0.02, name="boom")
        wait_until(lambda: job.errors >= 3)
    job.cancel()
    stats = job.stats()
    assert stats["last_error"] == "KeyError" and stats["runs"] >= 3
    assert json.loads(json.dumps(sup.stats()))  # the whole snapshot is JSON
    assert any(
        "async job failed" in r.getMessage() and "boom" in r.getMessage() for r in caplog.records
    )
    assert all("secret" not in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------- cancelling


def test_cancel_async_job_stops_new_runs_and_says_whether_it_did(
    sup: TaskSupervisor,
) -> None:
    scheduler = sup.create_async_job_scheduler("default", default=True)
    job_runs, clock = Runs(), Runs()
    job = sup.create_async_job(target=job_runs, interval=0.02)
    sup.create_async_job(target=clock, interval=0.02)
    job_runs.wait_for(2)
    assert sup.cancel_async_job(job=job) is True
    assert sup.cancel_async_job(scheduler="default", job=job) is False
    count = len(job_runs.times)
    clock.wait_for(len(clock.times) + 5)
    assert len(job_runs.times) == count and job.state == "cancelled"
    assert scheduler.stats()["jobs_cancelled"] == 1
    with pytest.raises(TypeError, match="job="):
        sup.cancel_async_job()


def test_a_job_cancelled_before_the_scheduler_starts_never_runs(
    sup: TaskSupervisor,
) -> None:
    later = sup.create_async_job_scheduler("later", start=False)
    kept, dropped, clock = Runs(), Runs(), Runs()
    sup.create_async_job_scheduler("clock").create_threadsafe(clock, interval=0.02)
    sup.create_async_job(scheduler="later", target=kept, interval=60)
    job = sup.create_async_job(scheduler=later, target=dropped, interval=60)
    job.cancel()
    clock.wait_for(3)
    assert not kept.times  # not started yet
    assert later.start() is True and later.start() is False
    kept.wait_for(1)
    clock.wait_for(len(clock.times) + 3)
    assert not dropped.times


# -------------------------------------------------------------- stopping


def test_supervisor_stop_lets_a_run_in_progress_finish_and_ends_every_job() -> None:
    sup = TaskSupervisor(id="jobs-stop")
    sup.start()
    sup.create_aloop("jobs", default=True)
    scheduler = sup.create_async_job_scheduler("default", default=True)
    started, finished = threading.Event(), threading.Event()

    async def slow() -> None:
        started.set()
        await asyncio.sleep(0.2)
        finished.set()

    job = sup.create_async_job(target=slow, interval=60)
    assert started.wait(10)
    assert "async_job_scheduler_default" in sup.get_schedulers()
    sup.stop()
    assert finished.is_set()
    assert scheduler.stats()["state"] == "stopped" and job.state == "cancelled"
    assert sup.async_job_schedulers == {} and sup.default_async_job_scheduler is None


def test_stop_with_seconds_cancels_a_run_that_does_not_finish(sup: TaskSupervisor) -> None:
    scheduler = sup.create_async_job_scheduler("default", default=True)
    started, cancelled = threading.Event(), threading.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    sup.create_async_job(target=forever, interval=60)
    assert started.wait(10)
    begin = time.monotonic()
    scheduler.stop(wait=0.1)
    assert cancelled.is_set() and time.monotonic() - begin < 5
    assert "async_job_scheduler_default" not in sup.get_schedulers()
    with pytest.raises(LeasePoolNotStartedError, match="start"):
        scheduler.create_threadsafe(forever, interval=1)


def test_stop_with_cancel_tasks_cancels_runs_at_once(sup: TaskSupervisor) -> None:
    scheduler = sup.create_async_job_scheduler("default", default=True)
    started, cancelled = threading.Event(), threading.Event()

    async def long_run() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    sup.create_async_job(target=long_run, interval=60)
    assert started.wait(10)
    scheduler.stop(wait=True, cancel_tasks=True)
    assert cancelled.is_set()


def test_supervisor_stop_without_stopping_schedulers_still_ends_the_jobs() -> None:
    sup = TaskSupervisor(id="jobs-nostop")
    sup.start()
    sup.create_aloop("jobs", default=True)
    scheduler = sup.create_async_job_scheduler("default", default=True)
    runs = Runs()
    job = sup.create_async_job(target=runs, interval=0.02)
    unstarted = sup.create_async_job_scheduler("idle", start=False)
    idle_job = unstarted.create_threadsafe(runs, interval=60)
    runs.wait_for(2)
    sup.stop(stop_schedulers=False)
    assert scheduler.stats()["state"] == "stopped"
    assert job.state == "cancelled" and idle_job.state == "cancelled"


def test_a_job_may_create_and_cancel_jobs_on_its_own_loop(sup: TaskSupervisor) -> None:
    scheduler = sup.create_async_job_scheduler("default", default=True)
    child_runs = Runs()
    made: list[AsyncJob] = []

    async def parent() -> None:
        made.append(await scheduler.create(child_runs, interval=60))
        made.append(scheduler.create_threadsafe(child_runs, interval=60))

    sup.create_async_job(target=parent, interval=60, number=1)
    child_runs.wait_for(2)
    assert all(job.cancel() for job in made)

    async def elsewhere() -> None:
        await scheduler.create(child_runs, interval=1)

    with pytest.raises(WrongLoopError, match="create_threadsafe"):
        asyncio.run(elsewhere())


# ------------------------------------------------------ the supervisor API


def test_scheduler_on_a_named_aloop_and_the_info_and_stats(sup: TaskSupervisor) -> None:
    sup.create_aloop("other")
    scheduler = sup.create_async_job_scheduler("mine", aloop="other")
    assert isinstance(scheduler, AsyncJobScheduler) and scheduler.id == "mine"
    runs = Runs()
    sup.create_async_job(scheduler="mine", target=runs, interval=60)
    runs.wait_for(1)
    assert runs.threads == ["supervisor_aloop_other"]
    info = sup.get_info()
    assert info.async_job_schedulers == {"mine": scheduler}
    assert sup.get_info(async_job_schedulers=False, aloops=False).async_job_schedulers == {}
    assert sup.get_info(aloops=False).aloops == {}
    (stats,) = sup.stats()["async_job_schedulers"]
    assert stats["name"] == "mine" and stats["aloop"] == "other" and stats["state"] == "running"
    assert "mine" in repr(scheduler) and "AsyncJob" in repr(scheduler.jobs()[0])


def test_default_scheduler_rules(sup: TaskSupervisor) -> None:
    runs = Runs()
    with pytest.raises(ValueError, match="no default async job scheduler"):
        sup.create_async_job(target=runs, interval=1)
    first = sup.create_async_job_scheduler("first")
    with pytest.raises(ValueError, match="no async job scheduler named 'nope'"):
        sup.create_async_job(scheduler="nope", target=runs, interval=1)
    sup.set_default_async_job_scheduler("first")
    assert sup.default_async_job_scheduler is first
    job = sup.create_async_job(target=runs, interval=60)
    assert job.scheduler is first


def test_bad_scheduler_names_and_a_stopped_supervisor_are_refused(sup: TaskSupervisor) -> None:
    sup.create_async_job_scheduler("taken")
    with pytest.raises(ValueError, match="already exists"):
        sup.create_async_job_scheduler("taken")
    for bad in ("", "__supervisor__", None):
        with pytest.raises(ValueError):
            sup.create_async_job_scheduler(bad)  # type: ignore[arg-type]
    idle = TaskSupervisor(id="jobs-idle")
    with pytest.raises(LeasePoolNotStartedError, match="start"):
        idle.create_async_job_scheduler("x")
    assert idle.async_job_schedulers == {}
    assert idle.create_async_job_scheduler("y", start=False).stats()["state"] == "created"


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"target": lambda: None, "interval": 1}, TypeError, "async function"),
        ({"target": "nope", "interval": 1}, TypeError, "async function"),
        ({"interval": 0}, ValueError, "interval must be"),
        ({"interval": -1}, ValueError, "interval must be"),
        ({"interval": float("nan")}, ValueError, "interval must be"),
        ({"interval": True}, ValueError, "interval must be"),
        ({}, ValueError, "needs interval="),
        ({"interval": 1, "timer": -1}, ValueError, "timer must be"),
        ({"interval": 1, "number": -1}, ValueError, "number must be"),
        ({"interval": 1, "number": 1.5}, ValueError, "number must be"),
        ({"interval": 1, "args": "abc"}, TypeError, "args must be"),
        ({"interval": 1, "kwargs": [1]}, TypeError, "kwargs must be"),
    ],
)
def test_bad_job_options_raise_when_the_job_is_created(
    sup: TaskSupervisor, options: dict[str, Any], error: type[Exception], match: str
) -> None:
    scheduler = sup.create_async_job_scheduler("default", default=True)

    async def target() -> None: ...

    options.setdefault("target", target)
    with pytest.raises(error, match=match):
        sup.create_async_job(**options)
    assert scheduler.jobs() == []


def test_tiny_intervals_are_raised_to_a_millisecond(sup: TaskSupervisor) -> None:
    sup.create_async_job_scheduler("default", default=True)
    runs = Runs()
    job = sup.create_async_job(target=runs, interval=1e-9, number=2)
    assert job.interval == 0.001
    runs.wait_for(2)


def test_spawn_ajob_is_the_global_create_async_job() -> None:
    assert neoleasepool.spawn_ajob == task_supervisor.create_async_job
    from neoleasepool.supervisor import spawn_ajob

    assert spawn_ajob == task_supervisor.create_async_job


def test_a_job_of_n_runs_finishes_when_its_last_run_ends_not_when_it_starts(
    sup: TaskSupervisor,
) -> None:
    sup.create_async_job_scheduler("default", default=True)
    started, release, ended = threading.Event(), threading.Event(), threading.Event()

    async def last() -> None:
        started.set()
        await asyncio.to_thread(release.wait, 10)
        ended.set()

    job = sup.create_async_job(target=last, interval=0.01, number=1)
    assert started.wait(10)
    assert job.active and job.state == "scheduled"  # its run is still going
    release.set()
    wait_until(lambda: not job.active)
    assert ended.is_set() and job.state == "finished"
