"""TaskSupervisor: seed 004, sentence by sentence, from plain sync code."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from neoleasepool import (
    ALoop,
    BackgroundWorker,
    LeasePoolNotStartedError,
    SupervisorInfo,
    TaskSupervisor,
    task_supervisor,
)
from neoleasepool import spawn as default_spawn

from .support import ctrl_c_during_block, started_supervisor, wait_until


@pytest.fixture
def sup() -> Iterator[TaskSupervisor]:
    with started_supervisor("t", max_threads=8, stop_wait=1.0) as supervisor:
        yield supervisor


def thread_names() -> set[str]:
    return {t.name for t in threading.enumerate()}


class Recorder:
    """A scheduler that notes when it is stopped and with what."""

    def __init__(self, name: str, log: list[Any], aloop: ALoop | None = None) -> None:
        self.name = name
        self.log = log
        if aloop is not None:
            self.aloop = aloop
        self.running = threading.Event()
        self._stop = asyncio.Event()
        self.loop_thread = ""

    async def loop(self) -> None:
        self.loop_thread = threading.current_thread().name
        self.running.set()
        await self._stop.wait()

    def stop(self, wait: Any = True) -> None:
        self.log.append((self.name, wait))
        loop = getattr(self, "aloop", None)
        assert self.running.is_set()
        if loop is not None:
            loop.call_soon(self._stop.set)


# ------------------------------------------------------------------ usage


def test_importing_creates_the_default_supervisor_and_starts_no_thread() -> None:
    code = (
        "import threading, neoleasepool as n;"
        "print(n.task_supervisor.id, n.task_supervisor.active, threading.active_count())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["default", "False", "1"]
    assert task_supervisor.id == "default"


def test_the_default_supervisor_is_one_task_supervisor_under_every_import_path() -> None:
    import neoleasepool.supervisor as neotasker_path

    assert isinstance(task_supervisor, TaskSupervisor)
    assert neotasker_path.task_supervisor is task_supervisor
    assert neotasker_path.TaskSupervisor is TaskSupervisor
    assert neotasker_path.SupervisorInfo is SupervisorInfo
    assert neotasker_path.spawn == default_spawn == task_supervisor.spawn


def test_default_supervisor_starts_spawns_and_stops() -> None:
    task_supervisor.set_thread_pool(max_size=4)
    task_supervisor.start()
    try:
        assert default_spawn(pow, 2, 8).result(timeout=5) == 256
    finally:
        task_supervisor.stop()
    assert not task_supervisor.active


def test_using_the_supervisor_before_start_raises_runtime_error() -> None:
    supervisor = TaskSupervisor()
    with pytest.raises(RuntimeError, match="start"):
        supervisor.spawn(pow, 2, 2)
    with pytest.raises(LeasePoolNotStartedError):
        supervisor.register_scheduler(Recorder("r", []))
    with pytest.raises(RuntimeError):
        supervisor.register_sync_scheduler(Recorder("r", []))


def test_threads_are_named_after_the_supervisor(sup: TaskSupervisor) -> None:
    sup.spawn(time.sleep, 0).result(timeout=5)
    names = thread_names()
    assert "supervisor_t_loop" in names
    assert any(n.startswith("supervisor_t_pool") for n in names)
    assert sup.aloop is not None and sup.aloop.name == "__supervisor__"


# ---------------------------------------------------------------- pool size


def test_default_max_size_is_cpu_count_times_five() -> None:
    supervisor = TaskSupervisor()
    info = supervisor.get_info()
    assert info.pool_max_size == (os.cpu_count() or 1) * 5
    assert info.pool_min_size == 0
    assert isinstance(supervisor.thread_pool, concurrent.futures.ThreadPoolExecutor)


def test_min_size_max_prespawns_every_thread() -> None:
    supervisor = TaskSupervisor(id="pre")
    supervisor.set_thread_pool(min_size="max", max_size=3)
    supervisor.start()
    try:
        wait_until(lambda: sum(n.startswith("supervisor_pre_pool") for n in thread_names()) == 3)
        assert supervisor.get_info().pool_min_size == 3
    finally:
        supervisor.stop()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_size": 5, "max_size": 2}, "max_size"),
        ({"max_size": 0}, "max_size"),
        ({"max_size": True}, "max_size"),
        ({"max_size": 2.5}, "max_size"),
        ({"max_size": float("nan")}, "max_size"),
        ({"max_size": "10"}, "max_size"),
        ({"min_size": -1}, "min_size"),
        ({"min_size": "all"}, "min_size"),
    ],
)
def test_bad_pool_sizes_are_value_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TaskSupervisor().set_thread_pool(**kwargs)


def test_pool_can_be_replaced_while_running_without_losing_queued_tasks(
    sup: TaskSupervisor,
) -> None:
    sup.set_thread_pool(max_size=1)
    gate = threading.Event()
    old_pool = sup.thread_pool
    blocked = sup.spawn(gate.wait, 10)
    queued = [sup.spawn(pow, 2, i) for i in range(5)]
    sup.set_thread_pool(max_size=2)
    assert sup.thread_pool is not old_pool
    fresh = sup.spawn(pow, 3, 2)
    assert fresh.result(timeout=5) == 9
    gate.set()
    assert blocked.result(timeout=5) is True
    assert [f.result(timeout=5) for f in queued] == [2**i for i in range(5)]


def test_stop_joins_a_pool_replaced_at_runtime(sup: TaskSupervisor) -> None:
    old_pool = sup.thread_pool
    sup.spawn(time.sleep, 0.05)
    sup.set_thread_pool(max_size=2)
    sup.stop()
    assert isinstance(old_pool, concurrent.futures.ThreadPoolExecutor)
    assert not any(t.is_alive() for t in old_pool._threads)


def test_a_process_pool_works_as_the_task_pool() -> None:
    context = multiprocessing.get_context("forkserver")
    supervisor = TaskSupervisor(id="mp")
    supervisor.start()
    pool = concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context)
    supervisor.thread_pool = pool
    try:
        assert supervisor.spawn(pow, 2, 10).result(timeout=60) == 1024
        assert supervisor.get_info().pool_max_size == 1
    finally:
        supervisor.stop()
    # The no_leaks fixture checks that the worker process was joined.
    with pytest.raises(RuntimeError):
        pool.submit(pow, 2, 2)


# --------------------------------------------------------------- poll delay


def test_poll_delay_is_a_settable_compatibility_attribute() -> None:
    supervisor = TaskSupervisor()
    assert supervisor.poll_delay == 0.01
    supervisor.poll_delay = 0.1
    assert supervisor.poll_delay == 0.1


# ------------------------------------------------------------------ blocking


def test_block_returns_promptly_when_another_thread_stops(sup: TaskSupervisor) -> None:
    stopper = threading.Thread(target=sup.stop)
    begin = time.monotonic()
    threading.Timer(0.05, stopper.start).start()
    sup.block()
    assert time.monotonic() - begin < 5
    stopper.join()
    assert not sup.active


def test_block_returns_at_once_when_not_running() -> None:
    TaskSupervisor().block()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_in_block_stops_the_supervisor_gracefully(sup: TaskSupervisor) -> None:
    aloop = sup.create_aloop("busy")
    future = aloop.submit(asyncio.sleep, 0.05, "finished")
    ctrl_c_during_block(sup)
    assert not sup.active
    assert future.result(timeout=0) == "finished"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_stop_from_a_signal_handler(sup: TaskSupervisor) -> None:
    sup.create_aloop("a1")
    calls: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        calls.append(signum)
        sup.stop()

    old = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        sup.block()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert calls == [signal.SIGALRM]
    assert not sup.active


# ------------------------------------------------------------------ stopping


def test_start_stop_cycles_leave_no_thread_behind() -> None:
    before = set(threading.enumerate())
    supervisor = TaskSupervisor(id="cycle")
    for _ in range(3):
        supervisor.start()
        supervisor.create_aloop("a", default=True)
        supervisor.create_aloop("b")
        assert supervisor.spawn(pow, 2, 3).result(timeout=5) == 8
        supervisor.stop()
        assert set(threading.enumerate()) == before
    assert supervisor.get_aloops() == {}


def test_stop_is_idempotent_and_safe_from_many_threads(sup: TaskSupervisor) -> None:
    sup.create_aloop("x")
    threads = [threading.Thread(target=sup.stop) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sup.stop()
    assert not sup.active


def test_stop_from_an_aloop_thread_hands_off_and_completes(sup: TaskSupervisor) -> None:
    aloop = sup.create_aloop("inner")

    async def stop_supervisor() -> str:
        sup.stop()
        return "asked"

    assert aloop.call(stop_supervisor) == "asked"
    sup.block()
    wait_until(lambda: not any(n.endswith("_stopper") for n in thread_names()))
    assert not aloop.active


def test_stop_from_a_pool_thread_hands_off_and_completes(sup: TaskSupervisor) -> None:
    assert sup.spawn(sup.stop).result(timeout=5) is None
    sup.block()
    assert not sup.active


def test_stop_with_seconds_bounds_the_wait_for_a_stuck_coroutine(
    sup: TaskSupervisor,
) -> None:
    aloop = sup.create_aloop("stuck")
    stuck = aloop.submit(asyncio.sleep, 60)
    begin = time.monotonic()
    sup.stop(wait=0.2)
    took = time.monotonic() - begin
    assert 0.15 <= took < 5
    assert stuck.cancelled()


def test_stop_waits_for_coroutines_by_default(sup: TaskSupervisor) -> None:
    aloop = sup.create_aloop("finishing")
    future = aloop.submit(asyncio.sleep, 0.1, "done")
    sup.stop()
    assert future.result(timeout=0) == "done"


def test_stop_without_wait_cancels_coroutines(sup: TaskSupervisor) -> None:
    future = sup.create_aloop("nowait").submit(asyncio.sleep, 60)
    sup.stop(wait=False)
    assert future.cancelled()


def test_cancel_tasks_cancels_coroutines_at_once(sup: TaskSupervisor) -> None:
    future = sup.create_aloop("c").submit(asyncio.sleep, 60)
    begin = time.monotonic()
    sup.stop(wait=True, cancel_tasks=True)
    assert time.monotonic() - begin < 5
    assert future.cancelled()


def test_stop_waits_for_task_threads(sup: TaskSupervisor) -> None:
    future = sup.spawn(time.sleep, 0.1)
    sup.stop(wait=False)
    assert future.done() and not future.cancelled()


def test_stop_order_is_schedulers_newest_first_then_aloops_then_pool(
    sup: TaskSupervisor,
) -> None:
    log: list[Any] = []
    aloop = sup.create_aloop("sched")
    first, second = Recorder("first", log, aloop), Recorder("second", log, aloop)
    sync = Recorder("sync", log)
    sync.running.set()
    for scheduler in (first, second):
        sup.register_scheduler(scheduler)
        assert scheduler.running.wait(5)
    sup.register_sync_scheduler(sync)

    original_stop = aloop.request_stop

    def noting_stop(*args: Any) -> Any:
        log.append(("aloop", aloop.active))
        return original_stop(*args)

    aloop.request_stop = noting_stop  # type: ignore[method-assign,assignment]
    sup.stop(wait=2.0)
    names = [entry[0] for entry in log]
    assert names == ["sync", "second", "first", "aloop"]
    assert log[-1] == ("aloop", True)  # schedulers stopped while it still ran
    assert all(isinstance(w, float) for _, w in log[:3])
    assert sup.get_schedulers() == {}


def test_stop_passes_only_wait_to_schedulers(sup: TaskSupervisor) -> None:
    seen: list[Any] = []

    class ThirdParty:
        _name = "third"

        async def loop(self) -> None:
            await asyncio.sleep(0)

        def stop(self, wait: Any = True) -> None:  # no other parameter
            seen.append(wait)

    sup.register_scheduler(ThirdParty())
    sup.stop(wait=True)
    assert seen == [True]


def test_stop_schedulers_false_leaves_them_unstopped_and_cancels_loops(
    sup: TaskSupervisor,
) -> None:
    log: list[Any] = []
    scheduler = Recorder("kept", log)
    future = sup.register_scheduler(scheduler)
    assert scheduler.running.wait(5)
    sup.stop(wait=0.1, stop_schedulers=False)
    assert log == []
    assert future.cancelled()


def test_stop_schedulers_false_tells_a_sync_worker_to_stop_instead_of_hanging() -> None:
    supervisor = TaskSupervisor(id="nosched")
    supervisor.start()
    ran, idle = threading.Event(), threading.Event()

    def tick(**kwargs: Any) -> None:
        ran.set()
        idle.wait(0.005)  # pace the loop; idle is never set

    worker = BackgroundWorker("tick", tick, supervisor=supervisor)
    worker.start()
    assert ran.wait(5)
    stopped = concurrent.futures.Future[None]()

    def stop() -> None:
        supervisor.stop(stop_schedulers=False)
        stopped.set_result(None)

    stopper = threading.Thread(target=stop, name="stopper")
    stopper.start()
    try:
        stopped.result(timeout=10)  # the pool's shutdown joined the worker's thread
        assert worker.is_stopped() and not worker.is_active()
    finally:
        if not stopped.done():
            worker.stop(wait=False)  # end the loop the stop hangs on
        stopper.join(10)


# ---------------------------------------------------------------- schedulers


def test_scheduler_loops_run_on_the_loop_they_name(sup: TaskSupervisor) -> None:
    log: list[Any] = []
    aloop = sup.create_aloop("mine")
    on_supervisor = Recorder("plain", log)
    on_aloop = Recorder("named", log, aloop)

    class NeotaskerStyle(Recorder):
        pass

    by_worker_loop = NeotaskerStyle("legacy", log)
    by_worker_loop.worker_loop = aloop.get_loop()  # type: ignore[attr-defined]
    for scheduler in (on_supervisor, on_aloop, by_worker_loop):
        sup.register_scheduler(scheduler)
        assert scheduler.running.wait(5)
    assert on_supervisor.loop_thread == "supervisor_t_loop"
    assert on_aloop.loop_thread == "supervisor_aloop_mine"
    assert by_worker_loop.loop_thread == "supervisor_aloop_mine"
    on_supervisor.aloop = sup.aloop  # type: ignore[assignment]  # to let it stop
    by_worker_loop.aloop = aloop


def test_a_scheduler_loop_runs_on_an_asyncio_loop_that_no_aloop_runs(
    sup: TaskSupervisor,
) -> None:
    class OnItsOwnLoop:
        name = "own-loop"

        def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
            self.worker_loop = loop  # neotasker's attribute: a loop of its own
            self.ran_on = concurrent.futures.Future[str]()
            self.stopped = concurrent.futures.Future[Any]()

        async def loop(self) -> None:
            self.ran_on.set_result(threading.current_thread().name)
            await asyncio.wrap_future(self.stopped)

        def stop(self, wait: Any = True) -> None:
            self.stopped.set_result(wait)

    plain = asyncio.new_event_loop()
    thread = threading.Thread(target=plain.run_forever, name="plain_asyncio_loop")
    thread.start()
    try:
        scheduler = OnItsOwnLoop(plain)
        future = sup.register_scheduler(scheduler)
        assert scheduler.ran_on.result(timeout=5) == "plain_asyncio_loop"
        sup.stop(wait=True)
        assert scheduler.stopped.result(timeout=5) is True
        future.result(timeout=5)
    finally:
        plain.call_soon_threadsafe(plain.stop)
        thread.join(5)
        plain.close()


def test_scheduler_names_come_from_name_or__name_or_are_generated(
    sup: TaskSupervisor,
) -> None:
    class Anonymous:
        def stop(self, wait: Any = True) -> None:
            pass

    class Legacy(Anonymous):
        _name = "legacy"

    class Named(Anonymous):
        name = "named"

    for scheduler in (Named(), Legacy(), Anonymous()):
        sup.register_sync_scheduler(scheduler)
    names = list(sup.get_schedulers())
    assert names[:2] == ["named", "legacy"]
    assert names[2].startswith("Anonymous_")
    with pytest.raises(ValueError, match="already registered"):
        sup.register_sync_scheduler(Named())


def test_unregister_and_get_info_and_stats(sup: TaskSupervisor) -> None:
    log: list[Any] = []
    scheduler = Recorder("r", log)
    scheduler.running.set()
    sup.register_sync_scheduler(scheduler)
    sup.create_aloop("i")
    info = sup.get_info()
    assert isinstance(info, SupervisorInfo)
    assert info.id == "t" and info.active
    assert list(info.aloops) == ["i"] and list(info.schedulers) == ["r"]
    assert info.pool_max_size == 8
    stats = sup.stats()
    json.dumps(stats)
    assert stats["schedulers"][0]["name"] == "r"
    assert "active" in repr(sup)
    sup.unregister_sync_scheduler(scheduler)
    sup.unregister_scheduler(scheduler)  # not registered: nothing happens
    assert sup.get_schedulers() == {}


# -------------------------------------------------------------------- aloops


def test_create_aloop_rules(sup: TaskSupervisor) -> None:
    with pytest.raises(ValueError, match="reserved"):
        sup.create_aloop("__supervisor__")
    sup.create_aloop("dup")
    with pytest.raises(ValueError, match="already exists"):
        sup.create_aloop("dup")
    with pytest.raises(ValueError, match="no aloop"):
        sup.start_aloop("missing")


def test_aloop_start_stop_and_default(sup: TaskSupervisor) -> None:
    later = sup.create_aloop("later", start=False, daemon=True)
    assert not later.active and later.daemon
    sup.start_aloop("later")
    assert later.active and later.thread is not None and later.thread.daemon
    assert sup.get_aloop() is None
    sup.set_default_aloop("later")
    assert sup.get_aloop() is later
    assert sup.get_aloop("later") is later
    assert sup.get_aloop("__supervisor__") is sup.aloop
    sup.stop_aloop("later")
    assert not later.active and later.get_loop() is None
    sup.start_aloop("later")
    assert later.run_coroutine_threadsafe(asyncio.sleep(0, "ok")) == "ok"


def test_custom_supervisors_run_side_by_side() -> None:
    class MySupervisor(TaskSupervisor):
        pass

    first = TaskSupervisor(id="one")
    second = MySupervisor()
    legacy = TaskSupervisor(supervisor_id="legacy")
    assert legacy.id == "legacy"
    assert len(second.id) == 36  # a UUID
    first.start()
    second.start()
    try:
        a = first.create_aloop("same")
        b = second.create_aloop("same")
        assert a is not b
        first.stop()
        assert not a.active
        assert b.call(asyncio.sleep, 0, "still running") == "still running"
        assert second.spawn(pow, 3, 3).result(timeout=5) == 27
    finally:
        first.stop()
        second.stop()
