"""neoleasepool as neotasker's drop-in: the migration table, row by row, and
the neotasker-style example.

``doc/migration.md`` lists, in its "From neotasker" table, every way
neoleasepool still differs from neotasker 0.0.41.  Each row's topic (the
first column) has a check here, registered with :func:`row`, that asserts
what the neoleasepool column says; a row without a check, or a check
without a row, fails :func:`test_every_row_of_the_table_has_a_check`.

``examples/50_from_neotasker.py`` is a neotasker script whose import line
names ``neoleasepool``.  The checks below show that nothing else in it
names neoleasepool or uses anything neotasker 0.0.41 lacks; when neotasker
is importable (``pip install neotasker==0.0.41``; it is not a test
dependency), the script also runs with its import switched back, and both
runs must print the same lines.
"""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import importlib.util
import io
import logging
import os
import re
import subprocess
import sys
import threading
import time
import tokenize
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import neoleasepool
from neoleasepool import (
    AsyncJobScheduler,
    BackgroundAsyncWorker,
    BackgroundEventWorker,
    BackgroundIntervalWorker,
    BackgroundQueueWorker,
    BackgroundWorker,
    LeasePoolNotStartedError,
    SupervisorInfo,
    TaskSupervisor,
    WrongLoopError,
    background_worker,
)

from .support import ctrl_c_during_block, started_supervisor, wait_until

REPO = Path(__file__).resolve().parent.parent
MIGRATION = REPO / "doc" / "migration.md"
EXAMPLE = REPO / "examples" / "50_from_neotasker.py"

Check = Callable[[TaskSupervisor], None]
CHECKS: dict[str, Check] = {}


def row(topic: str) -> Callable[[Check], Check]:
    """Register the check of the table row whose first column is ``topic``."""

    def register(check: Check) -> Check:
        assert topic not in CHECKS, f"two checks for {topic!r}"
        CHECKS[topic] = check
        return check

    return register


def table_topics() -> list[str]:
    """The first column of the "From neotasker" table, backticks removed."""
    text = MIGRATION.read_text(encoding="utf-8")
    section = text.split("## From neotasker", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| topic |") and set(rows[1]) <= set("|- "), rows[:2]
    return [line.split("|")[1].strip().replace("`", "") for line in rows[2:]]


@pytest.fixture
def sup() -> Iterator[TaskSupervisor]:
    with started_supervisor("nt", max_threads=8, stop_wait=5.0) as supervisor:
        yield supervisor


def test_every_row_of_the_table_has_a_check() -> None:
    topics = table_topics()
    assert len(topics) == len(set(topics)), "a topic appears twice"
    assert sorted(topics) == sorted(CHECKS), (
        f"rows without a check: {sorted(set(topics) - set(CHECKS))}; "
        f"checks without a row: {sorted(set(CHECKS) - set(topics))}"
    )


@pytest.mark.parametrize("topic", table_topics())
def test_what_the_row_says(topic: str, sup: TaskSupervisor) -> None:
    CHECKS[topic](sup)


class Runs:
    """Counts target calls; the test waits for the n-th."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._cond = threading.Condition()

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        with self._cond:
            self.times.append(time.monotonic())
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.times) >= count, timeout)


def supervisor_threads(sup: TaskSupervisor) -> list[str]:
    return [t.name for t in threading.enumerate() if sup.id in t.name and t.is_alive()]


# ------------------------------------------------------------ the supervisor


@row("waiting")
def _waiting(sup: TaskSupervisor) -> None:
    sup.poll_delay = 5.0  # would be five seconds per item if it were slept on
    runs = Runs()
    worker = BackgroundQueueWorker("nt-wait", runs, supervisor=sup, poll_delay=5.0)
    worker.start()
    began = time.monotonic()
    for n in range(3):
        worker.put_threadsafe(n)
    runs.wait_for(3)
    assert time.monotonic() - began < 2.5
    worker.stop()
    assert sup.create_aloop("nt-wait").poll_delay == 0.01  # kept, and unused


@row("block()")
def _block(sup: TaskSupervisor) -> None:
    threading.Timer(0.05, sup.stop).start()
    sup.block()  # returns when the stop is done
    assert not sup.active
    sup.start()
    ctrl_c_during_block(sup)  # Ctrl-C: a graceful stop, then block() returns
    assert not sup.active
    sup.start()


@row("stop()")
def _stop(_: TaskSupervisor) -> None:
    sup = TaskSupervisor(id="nt-order")
    sup.start()
    sup.create_aloop("nt-order-aloop", default=True)
    order: list[str] = []

    class Recorder:
        def __init__(self, name: str) -> None:
            self.name = name

        def stop(self, wait: bool | float = True) -> None:
            order.append(self.name)

    sup.register_sync_scheduler(Recorder("first"))
    sup.create_async_job_scheduler("jobs")
    sup.register_sync_scheduler(Recorder("last"))
    old_pool = sup.thread_pool
    sup.spawn(time.sleep, 0).result()
    sup.set_thread_pool(max_size=2)  # a replaced pool is joined too
    sup.stop()
    assert order == ["last", "first"]
    assert sup.get_schedulers() == {} and sup.async_job_schedulers == {}
    assert supervisor_threads(sup) == [] and old_pool is not sup.thread_pool
    assert not any(t.name == "supervisor_aloop_nt-order-aloop" for t in threading.enumerate())


@row("stop(stop_schedulers=False)")
def _stop_without_schedulers(_: TaskSupervisor) -> None:
    sup = TaskSupervisor(id="nt-nostop")
    sup.start()
    sup.create_aloop("nt-nostop", default=True)
    looping = BackgroundAsyncWorker("nt-loop", lambda **kw: None, supervisor=sup)
    plain = BackgroundWorker("nt-plain", lambda **kw: None, supervisor=sup)
    looping.start()
    plain.start()
    sup.stop(stop_schedulers=False)
    assert looping.wait_until_stop(10) and plain.wait_until_stop(10)
    assert supervisor_threads(sup) == []


@row("stop() from the supervisor's own threads")
def _stop_from_own_thread(_: TaskSupervisor) -> None:
    sup = TaskSupervisor(id="nt-self")
    sup.start()
    aloop = sup.create_aloop("nt-self")

    async def stop_here() -> None:
        sup.stop()  # hands the stop to a helper thread and returns

    aloop.call(stop_here)
    sup.block()
    assert not sup.active and not aloop.active


@row("pool health monitor")
def _no_monitor(sup: TaskSupervisor) -> None:
    assert not [t for t in threading.enumerate() if "monitor" in t.name]


@row("using the supervisor before start()")
def _before_start(_: TaskSupervisor) -> None:
    idle = TaskSupervisor(id="nt-idle")
    for attempt in (
        lambda: idle.spawn(print),
        lambda: BackgroundWorker("nt-early", print, supervisor=idle).start(),
        lambda: idle.register_sync_scheduler(BackgroundWorker("x", print)),
        lambda: idle.create_async_job_scheduler("nt-early"),
    ):
        with pytest.raises(LeasePoolNotStartedError, match=r"start\(\)"):
            attempt()
        assert isinstance(LeasePoolNotStartedError(), RuntimeError)


@row("bad pool sizes")
def _bad_pool_sizes(sup: TaskSupervisor) -> None:
    for kwargs in ({"min_size": 1.5}, {"max_size": "8"}, {"min_size": 4, "max_size": 2}):
        with pytest.raises(ValueError, match="size"):
            sup.set_thread_pool(**kwargs)  # type: ignore[arg-type]


@row("stop_aloop(name) with workers or job schedulers on it")
def _stop_aloop_with_schedulers(sup: TaskSupervisor) -> None:
    sup.create_aloop("nt-busy")
    ticks = threading.Event()

    class Ticker(BackgroundIntervalWorker):
        async def run(self, **kwargs: Any) -> None:
            ticks.set()

    worker = Ticker(name="nt-ticker", supervisor=sup, interval=0.01, loop="nt-busy")
    worker.start()
    scheduler = sup.create_async_job_scheduler("nt-busy-jobs", aloop="nt-busy")

    async def job() -> None:
        pass

    sup.create_async_job(scheduler="nt-busy-jobs", target=job, interval=0.01)
    assert ticks.wait(10)
    elsewhere = Ticker(name="nt-elsewhere", supervisor=sup, interval=0.01)
    elsewhere.start()
    stopped = threading.Event()

    def stop() -> None:
        assert sup.stop_aloop("nt-busy", wait=True) is True
        stopped.set()

    threading.Thread(target=stop, daemon=True).start()
    assert stopped.wait(30), "stop_aloop() hung on the schedulers of its aloop"
    assert not worker.is_active() and worker.stats()["state"] == "stopped"
    assert scheduler.stats()["state"] == "stopped"
    assert elsewhere.is_active()  # only the stopped aloop's schedulers stop
    aloop = sup.get_aloop("nt-busy")
    assert aloop is not None and not aloop.active
    elsewhere.stop()


@row("a worker's own loop failing (a bug, not its target)")
def _worker_loop_failing(sup: TaskSupervisor) -> None:
    runs = Runs()
    worker = BackgroundWorker("nt-crashing", runs, supervisor=sup)
    calls = 0
    original = worker._call_sync

    def failing_after_one(*args: Any) -> bool:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise RuntimeError("a bug in the worker's loop")
        return original(*args)

    worker._call_sync = failing_after_one  # type: ignore[method-assign]
    worker.start()
    runs.wait_for(1)
    wait_until(lambda: not worker.is_active())
    assert worker.stats()["state"] == "broken"
    del worker._call_sync
    worker.start()  # starts again
    runs.wait_for(2)
    assert worker.stats()["state"] == "running"
    worker.stop()


@row("a taken or unknown name")
def _names(sup: TaskSupervisor) -> None:
    sup.create_aloop("nt-taken")
    sup.create_async_job_scheduler("nt-taken")
    for call in (
        lambda: sup.create_aloop("nt-taken"),
        lambda: sup.create_async_job_scheduler("nt-taken"),
        lambda: sup.start_aloop("nt-missing"),
        lambda: sup.stop_aloop("nt-missing"),
        lambda: sup.create_aloop("__supervisor__"),
        lambda: sup.create_async_job_scheduler("__supervisor__"),
    ):
        with pytest.raises(ValueError):
            call()


@row("aloop thread names")
def _aloop_threads(sup: TaskSupervisor) -> None:
    aloop = sup.create_aloop("nt-named")
    assert aloop.thread is not None and aloop.thread.name == "supervisor_aloop_nt-named"


@row("blocking calls on an aloop's own thread")
def _own_thread(sup: TaskSupervisor) -> None:
    aloop = sup.create_aloop("nt-own")

    async def nested() -> None:
        async def inner() -> None: ...

        coro = inner()
        try:
            aloop.run_coroutine_threadsafe(coro)
        finally:
            coro.close()

    with pytest.raises(WrongLoopError, match="await"):
        aloop.call(nested)


@row("register_async_scheduler")
def _register(sup: TaskSupervisor) -> None:
    stopped = threading.Event()

    class Scheduler:
        name = "nt-reg"

        def __init__(self) -> None:
            self.done: asyncio.Event | None = None

        async def loop(self) -> str:
            self.done = asyncio.Event()
            await self.done.wait()
            return "ended"

        def stop(self, wait: bool | float = True) -> None:
            stopped.set()

    scheduler = Scheduler()
    future = sup.register_async_scheduler(scheduler)
    assert sup.register_scheduler == sup.register_async_scheduler
    wait_until(lambda: scheduler.done is not None)
    assert sup.aloop is not None and scheduler.done is not None
    sup.aloop.call_soon(scheduler.done.set)
    assert future and future.result(timeout=10) == "ended"


@row("get_info()")
def _info(sup: TaskSupervisor) -> None:
    info = sup.get_info()
    assert isinstance(info, SupervisorInfo) and info.id == "nt" and info.active
    assert {f.name for f in dataclasses.fields(info)} >= {
        "aloops",
        "schedulers",
        "async_job_schedulers",
        "pool_min_size",
        "pool_max_size",
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.active = False  # type: ignore[misc]


@row("an async worker without an aloop")
def _no_aloop(sup: TaskSupervisor) -> None:
    runs = Runs()
    worker = BackgroundAsyncWorker("nt-own-loop", runs, supervisor=sup)
    worker.start()
    runs.wait_for(1)
    assert worker.aloop is sup.aloop
    worker.stop()


# ------------------------------------------------------------------ workers


@row("priority=")
def _priority(sup: TaskSupervisor) -> None:
    kinds = (
        BackgroundWorker,
        BackgroundAsyncWorker,
        BackgroundIntervalWorker,
        BackgroundQueueWorker,
        BackgroundEventWorker,
    )
    for kind in kinds:
        worker = kind(f"nt-p-{kind.__name__}", print, priority=10)
        assert worker.priority == 10 and worker.stats()["priority"] == 10
    kwargs: list[dict[str, Any]] = []
    worker = BackgroundWorker("nt-prio", lambda **kw: kwargs.append(kw), supervisor=sup)
    worker.start(_priority=3)
    wait_until(lambda: bool(kwargs))
    worker.stop()
    assert worker.priority == 3 and "_priority" not in kwargs[0]
    with pytest.raises(ValueError, match="priority must be an integer"):
        BackgroundWorker("nt-bad", print, priority="high")  # type: ignore[arg-type]


@row("delay_before=")
def _delay_before(sup: TaskSupervisor) -> None:
    runs = Runs()
    worker = background_worker(delay_before=0.1, interval=60, supervisor=sup)(runs)
    assert isinstance(worker, BackgroundIntervalWorker) and worker.delay_before == 0.1
    began = time.monotonic()
    worker.start()
    runs.wait_for(1)
    assert runs.times[0] - began >= 0.095
    worker.stop()
    waiting = BackgroundIntervalWorker("nt-db", runs, interval=1, supervisor=sup)
    waiting.start(_delay_before=3600)
    began = time.monotonic()
    waiting.stop()
    assert time.monotonic() - began < 2 and len(runs.times) == 1


@row("worker stop(wait=<seconds>)")
def _worker_stop_seconds(sup: TaskSupervisor) -> None:
    started = threading.Event()

    async def stuck(**kwargs: Any) -> None:
        started.set()
        await asyncio.Event().wait()

    worker = BackgroundAsyncWorker("nt-stuck", stuck, supervisor=sup)
    worker.start()
    assert started.wait(10)
    began = time.monotonic()
    worker.stop(wait=0.1)
    assert time.monotonic() - began < 5 and worker.is_stopped()


@row("a target that raises, without on_error")
def _target_raises(sup: TaskSupervisor) -> None:
    def boom(**kwargs: Any) -> None:
        raise KeyError("x")

    worker = BackgroundWorker("nt-boom", boom, supervisor=sup)
    worker.start()
    assert worker.wait_until_stop(10)
    assert not worker.is_active() and "nt-boom" not in sup.get_schedulers()
    assert worker.stats()["errors"] == 1


@row("feeding a stopped worker")
def _feeding_stopped(sup: TaskSupervisor) -> None:
    queue_worker = BackgroundQueueWorker("nt-q", print, supervisor=sup)
    event_worker = BackgroundEventWorker("nt-e", print, supervisor=sup)
    for worker in (queue_worker, event_worker):
        worker.start()
        worker.stop()
    with pytest.raises(LeasePoolNotStartedError):
        queue_worker.put_threadsafe("lost?")
    with pytest.raises(LeasePoolNotStartedError):
        event_worker.trigger_threadsafe()


@row("None on a queue worker")
def _none_item(sup: TaskSupervisor) -> None:
    items: list[Any] = []
    worker = BackgroundQueueWorker("nt-none", lambda item, **kw: items.append(item), supervisor=sup)
    worker.start()
    for item in (1, None, 2):
        worker.put_threadsafe(item)
    worker.stop()  # the items put before the stop still run
    assert items == [1, None, 2]


@row("triggers during a run")
def _triggers_merge(sup: TaskSupervisor) -> None:
    running, release = threading.Event(), threading.Event()
    runs = Runs()

    def target(**kwargs: Any) -> None:
        runs()
        running.set()
        release.wait(10)

    worker = BackgroundEventWorker("nt-trig", target, supervisor=sup)
    worker.start()
    worker.trigger_threadsafe()
    assert running.wait(10)
    worker.trigger_threadsafe()  # during the run: one more run after it
    worker.trigger_threadsafe()
    release.set()
    runs.wait_for(2)
    worker.stop()
    assert len(runs.times) == 2


@row("interval worker overrun")
def _overrun(sup: TaskSupervisor) -> None:
    runs = Runs()

    async def first_run_overruns(**kwargs: Any) -> None:
        runs()
        if len(runs.times) == 1:
            await asyncio.sleep(0.3)  # six periods

    worker = BackgroundIntervalWorker("nt-over", first_run_overruns, interval=0.05, supervisor=sup)
    worker.start()
    runs.wait_for(4)
    worker.stop()
    # After the overrun: one run at once, then one per period (no catch-up burst).
    assert runs.times[3] - runs.times[1] >= 0.03


@row("worker._name")
def _worker_name(sup: TaskSupervisor) -> None:
    worker = BackgroundWorker("nt-named", lambda **kw: None, supervisor=sup)
    assert worker._name == worker.name == "nt-named"
    worker.start()
    assert "nt-named" in sup.get_schedulers()
    worker.stop()


@row("worker internals")
def _internals(sup: TaskSupervisor) -> None:
    for missing in ("mark_started", "mark_stopped", "set_name", "error", "process_result"):
        assert not hasattr(BackgroundWorker, missing), missing
    calls: list[str] = []

    class Hooked(BackgroundQueueWorker):
        def run(self, item: Any, **kwargs: Any) -> None:
            calls.append("run")

        def before_start(self) -> None:
            calls.append("before_start")

        def after_start(self) -> None:
            calls.append("after_start")

        def after_queue_get(self, task: Any) -> None:
            calls.append("after_queue_get")

        def before_stop(self) -> None:
            calls.append("before_stop")

        def after_stop(self) -> None:
            calls.append("after_stop")

    worker = Hooked("nt-hooks", supervisor=sup)
    worker.start()
    worker.put_threadsafe(1)
    worker.stop()
    assert worker.wait_until_stop(10)
    assert sorted(calls) == sorted(
        ["before_start", "after_start", "after_queue_get", "run", "before_stop", "after_stop"]
    )
    assert calls[:2] == ["before_start", "after_start"] and calls[-1] == "after_stop"
    assert calls.index("after_queue_get") < calls.index("run")  # the item ran before the end


# ---------------------------------------------------------------- async jobs


def _job_scheduler(sup: TaskSupervisor) -> AsyncJobScheduler:
    sup.create_aloop("nt-jobs", default=True)
    return sup.create_async_job_scheduler("nt-jobs", default=True)


@row("async job engine")
def _job_engine(sup: TaskSupervisor) -> None:
    sup.create_aloop("nt-jobs", default=True)
    scheduler = sup.create_async_job_scheduler("nt-jobs", start=False, default=True)
    runs = Runs()

    async def target() -> None:
        runs()

    job = sup.create_async_job(target=target, interval=0.01, number=2)
    assert scheduler.start() is True
    wait_until(lambda: not job.active)
    assert job.state == "finished" and len(runs.times) == 2
    assert {"runs", "errors", "skipped", "running", "last_run", "next_run_in"} <= set(job.stats())
    assert {"jobs", "running", "jobs_created", "state"} <= set(scheduler.stats())


@row("stopping async jobs")
def _job_stop(sup: TaskSupervisor) -> None:
    scheduler = _job_scheduler(sup)
    started, finished = threading.Event(), threading.Event()

    async def slow() -> None:
        started.set()
        await asyncio.sleep(0.1)
        finished.set()

    sup.create_async_job(target=slow, interval=60)
    assert "async_job_scheduler_nt-jobs" in sup.get_schedulers()
    assert started.wait(10)
    scheduler.stop(wait=True)
    assert finished.is_set() and "async_job_scheduler_nt-jobs" not in sup.get_schedulers()


@row("missed job ticks")
def _missed_ticks(sup: TaskSupervisor) -> None:
    _job_scheduler(sup)
    runs = Runs()
    blocked = threading.Event()

    async def tick() -> None:
        runs()

    async def hog() -> None:
        time.sleep(0.25)  # blocks the loop for five ticks
        blocked.set()

    job = sup.create_async_job(target=tick, interval=0.05)
    runs.wait_for(1)
    sup.create_async_job(target=hog, interval=60, number=1)
    assert blocked.wait(10)
    after = len(runs.times)
    runs.wait_for(after + 3)
    assert job.skipped >= 3 and runs.times[after + 2] - runs.times[after] >= 0.05


@row("async job options")
def _job_options(sup: TaskSupervisor) -> None:
    _job_scheduler(sup)

    async def target() -> None: ...

    with pytest.raises(ValueError, match="needs interval="):
        sup.create_async_job(target=target)
    with pytest.raises(ValueError, match="interval must be"):
        sup.create_async_job(target=target, interval=0)
    with pytest.raises(TypeError, match="async function"):
        sup.create_async_job(target=print, interval=1)
    assert sup.create_async_job(target=target, timer=7).interval == 7
    assert sup.create_async_job(target=target, interval=1e-6).interval == 0.001


@row("a failing async job")
def _failing_job(sup: TaskSupervisor) -> None:
    _job_scheduler(sup)

    async def boom() -> None:
        raise ZeroDivisionError

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("neoleasepool.jobs")
    logger.addHandler(handler)
    try:
        job = sup.create_async_job(target=boom, interval=0.01)
        wait_until(lambda: job.errors >= 2 and len(records) >= 2)
    finally:
        logger.removeHandler(handler)
    job.cancel()
    assert job.active is False and job.stats()["last_error"] == "ZeroDivisionError"
    assert records[0].levelno == logging.ERROR and records[0].exc_info is not None


@row("cancel_async_job")
def _cancel_async_job(sup: TaskSupervisor) -> None:
    _job_scheduler(sup)

    async def target() -> None: ...

    job = sup.create_async_job(target=target, interval=60)
    assert sup.cancel_async_job(job=job) is True
    assert sup.cancel_async_job(job=job) is False and job.cancel() is False


@row("no default async job scheduler")
def _no_default(sup: TaskSupervisor) -> None:
    async def target() -> None: ...

    with pytest.raises(ValueError, match=r"default=True.*scheduler="):
        sup.create_async_job(target=target, interval=1)


@row("not provided")
def _not_provided(_: TaskSupervisor) -> None:
    for name in ("FunctionCollection", "LocalProxy", "g", "set_debug"):
        assert not hasattr(neoleasepool, name), name
    assert logging.getLogger("neoleasepool").handlers  # a NullHandler: levels are yours


# ------------------------------------------------------------------ the example

#: neotasker 0.0.41's public names, from its ``neotasker/__init__.py``.
NEOTASKER_NAMES = {
    "BackgroundAsyncWorker",
    "BackgroundEventWorker",
    "BackgroundIntervalWorker",
    "BackgroundQueueWorker",
    "BackgroundWorker",
    "FunctionCollection",
    "LocalProxy",
    "TaskSupervisor",
    "background_worker",
    "g",
    "set_debug",
    "spawn",
    "spawn_ajob",
    "task_supervisor",
}

#: neotasker 0.0.41's ``TaskSupervisor`` methods and attributes.
NEOTASKER_SUPERVISOR = {
    "active",
    "aloops",
    "async_job_schedulers",
    "block",
    "create_aloop",
    "create_async_job",
    "create_async_job_scheduler",
    "default_aloop",
    "default_async_job_scheduler",
    "get_aloop",
    "get_aloops",
    "get_info",
    "get_schedulers",
    "id",
    "poll_delay",
    "register_async_scheduler",
    "register_sync_scheduler",
    "set_default_aloop",
    "set_default_async_job_scheduler",
    "set_thread_pool",
    "spawn",
    "start",
    "start_aloop",
    "stop",
    "stop_aloop",
    "thread_pool",
    "unregister_scheduler",
}


def _example_tree() -> tuple[str, ast.Module]:
    source = EXAMPLE.read_text(encoding="utf-8")
    return source, ast.parse(source)


def test_the_example_names_neoleasepool_only_in_its_import_line() -> None:
    source, tree = _example_tree()
    imports = [
        node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)
    ]
    ours = [n for n in imports if isinstance(n, ast.ImportFrom) and n.module == "neoleasepool"]
    assert len(ours) == 1, "one import line from neoleasepool"
    assert {alias.name for alias in ours[0].names} <= NEOTASKER_NAMES
    others = {alias.name for n in imports if n not in ours for alias in n.names}
    assert others <= {"threading", "time"}, others
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    named = {t.start[0] for t in tokens if t.type == tokenize.NAME and t.string == "neoleasepool"}
    assert named == {ours[0].lineno}


def test_the_example_uses_only_neotaskers_supervisor_api() -> None:
    _, tree = _example_tree()
    used = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "task_supervisor"
    }
    assert used and used <= NEOTASKER_SUPERVISOR, used - NEOTASKER_SUPERVISOR


def _run_example(path: Path, env: dict[str, str] | None = None) -> list[str]:
    completed = subprocess.run(
        [sys.executable, "-W", "ignore", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.splitlines()


@pytest.mark.skipif(
    importlib.util.find_spec("neotasker") is None,
    reason="neotasker is not installed (pip install neotasker==0.0.41 to compare)",
)
def test_the_example_prints_the_same_on_neotasker(tmp_path: Path) -> None:
    source = EXAMPLE.read_text(encoding="utf-8")
    original, count = re.subn(
        r"^from neoleasepool import", "from neotasker import", source, flags=re.MULTILINE
    )
    assert count == 1
    script = tmp_path / "neotasker_version.py"
    script.write_text(original, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    assert _run_example(script, env) == _run_example(EXAMPLE)
