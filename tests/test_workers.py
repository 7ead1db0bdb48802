"""Background workers of every kind, driven from plain sync code."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import multiprocessing
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from neoleasepool import (
    BackgroundAsyncWorker,
    BackgroundEventWorker,
    BackgroundIntervalWorker,
    BackgroundQueueWorker,
    BackgroundWorker,
    LeasePoolNotStartedError,
    TaskSupervisor,
    WrongLoopError,
    background_worker,
    task_supervisor,
)

from .support import started_supervisor, wait_until


@pytest.fixture
def sup() -> Iterator[TaskSupervisor]:
    with started_supervisor("w", max_threads=8, stop_wait=2.0) as supervisor:
        yield supervisor


class Calls:
    """Collects target calls and lets the test wait for the n-th one."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.kwargs: list[dict[str, Any]] = []
        self.threads: list[str] = []
        self._cond = threading.Condition()

    def note(self, item: Any = None, **kwargs: Any) -> None:
        with self._cond:
            self.items.append(item)
            self.kwargs.append(kwargs)
            self.threads.append(threading.current_thread().name)
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.items) >= count, timeout), (
                f"only {len(self.items)} of {count} calls"
            )


# ---------------------------------------------------------------- each kind


def test_a_worker_made_without_a_supervisor_runs_under_task_supervisor() -> None:
    for kind in (BackgroundWorker, BackgroundAsyncWorker, BackgroundQueueWorker):
        assert kind(f"default-{kind.__name__}", print).supervisor is task_supervisor


def test_background_worker_runs_a_sync_target_in_the_pool(sup: TaskSupervisor) -> None:
    calls = Calls()
    worker = BackgroundWorker("sync", lambda **kw: calls.note(**kw), supervisor=sup, o=7)
    worker.start(extra=1)
    calls.wait_for(3)
    worker.stop()
    assert worker.is_stopped() and not worker.is_active() and not worker.is_started()
    kwargs = calls.kwargs[0]
    assert kwargs["extra"] == 1 and kwargs["o"] == 7
    assert kwargs["_worker"] is worker and kwargs["_name"] == "sync"
    assert calls.threads[0].startswith("supervisor_w_pool")
    assert "sync" not in sup.get_schedulers()


def test_async_worker_awaits_an_async_target_on_the_default_aloop(
    sup: TaskSupervisor,
) -> None:
    sup.create_aloop("workers", default=True)
    calls = Calls()

    async def target(**kwargs: Any) -> None:
        calls.note(**kwargs)
        await asyncio.sleep(0.01)

    worker = BackgroundAsyncWorker("a", target, supervisor=sup)
    worker.start()
    assert worker.is_started()
    calls.wait_for(2)
    worker.stop()
    assert calls.threads[0] == "supervisor_aloop_workers"


def test_async_worker_runs_a_sync_target_in_the_pool(sup: TaskSupervisor) -> None:
    calls = Calls()
    worker = BackgroundAsyncWorker("s", lambda **kw: calls.note(), supervisor=sup)
    worker.start()
    calls.wait_for(2)
    worker.stop()
    assert calls.threads[0].startswith("supervisor_w_pool")


def test_interval_worker_keeps_a_fixed_rate(sup: TaskSupervisor) -> None:
    calls = Calls()

    async def busy(**kwargs: Any) -> None:
        calls.note(time.monotonic())
        await asyncio.sleep(0.06)  # runs start every 0.1 s, not 0.06 + 0.1

    worker = BackgroundIntervalWorker("tick", busy, interval=0.1, supervisor=sup)
    worker.start()
    calls.wait_for(4)
    worker.stop()
    assert worker.keep_interval
    first = calls.items[0]
    assert all(t - first >= k * 0.1 - 0.01 for k, t in enumerate(calls.items))
    assert (calls.items[3] - first) / 3 < 0.14


def test_interval_worker_with_delay_sleeps_between_runs(sup: TaskSupervisor) -> None:
    calls = Calls()

    async def slow(**kwargs: Any) -> None:
        calls.note(time.monotonic())
        await asyncio.sleep(0.03)

    worker = BackgroundIntervalWorker("delay", slow, delay=0.03, supervisor=sup)
    worker.start()
    calls.wait_for(3)
    worker.stop()
    assert not worker.keep_interval
    spans = [b - a for a, b in zip(calls.items, calls.items[1:], strict=False)]
    assert all(span >= 0.055 for span in spans), spans


def test_interval_worker_trigger_runs_at_once(sup: TaskSupervisor) -> None:
    calls = Calls()
    worker = BackgroundIntervalWorker(
        "slow", lambda **kw: calls.note(), interval=60, supervisor=sup
    )
    worker.start()
    calls.wait_for(1)
    worker.trigger_threadsafe()
    calls.wait_for(2)
    worker.trigger_threadsafe(skip=True)  # restarts the period, no run
    worker.stop()
    assert len(calls.items) == 2


def test_queue_worker_runs_each_item_in_order(sup: TaskSupervisor) -> None:
    calls = Calls()
    worker = BackgroundQueueWorker("q", calls.note, supervisor=sup)
    worker.start()
    for i in [*range(5), None]:
        worker.put_threadsafe(i)
    calls.wait_for(6)
    worker.stop()
    assert calls.items == [0, 1, 2, 3, 4, None]
    assert worker.stats()["queued"] == 0


def test_queue_worker_stop_drains_items_put_before_it(sup: TaskSupervisor) -> None:
    calls = Calls()

    async def slow(item: int, **kwargs: Any) -> None:
        await asyncio.sleep(0.005)
        calls.note(item)

    worker = BackgroundQueueWorker("drain", slow, supervisor=sup)
    worker.start()
    for i in range(10):
        worker.put_threadsafe(i)
    worker.stop(wait=True)
    assert calls.items == list(range(10))
    with pytest.raises(LeasePoolNotStartedError, match="start"):
        worker.put_threadsafe(11)


def test_queue_worker_put_racing_stop_either_runs_or_raises(sup: TaskSupervisor) -> None:
    calls = Calls()
    worker = BackgroundQueueWorker("race", calls.note, supervisor=sup)
    worker.start()
    accepted: list[int] = []
    putting = threading.Event()

    def put_until_refused() -> None:
        for i in range(1_000_000):
            try:
                worker.put_threadsafe(i)
            except LeasePoolNotStartedError:
                return
            accepted.append(i)
            putting.set()

    putter = threading.Thread(target=put_until_refused, name="putter")
    putter.start()
    assert putting.wait(5)
    worker.stop(wait=10)
    putter.join(10)
    assert not putter.is_alive()
    assert calls.items == accepted  # nothing accepted landed behind the sentinel


class _OneSlotQueue(asyncio.Queue[Any]):
    def __init__(self) -> None:
        super().__init__(maxsize=1)


def test_queue_worker_logs_an_item_a_full_bounded_queue_drops(
    sup: TaskSupervisor, caplog: pytest.LogCaptureFixture
) -> None:
    calls = Calls()
    entered, gate = threading.Event(), threading.Event()

    def slow(item: int, **kwargs: Any) -> None:
        entered.set()
        gate.wait(5)
        calls.note(item)

    worker = BackgroundQueueWorker("small", slow, supervisor=sup, q=_OneSlotQueue)
    worker.start()
    worker.put_threadsafe(1)
    assert entered.wait(5)  # 1 is out of the queue, in the target
    with caplog.at_level(logging.ERROR, logger="neoleasepool.workers"):
        worker.put_threadsafe(2)  # fills the one slot
        worker.put_threadsafe(3)  # refused
        wait_until(lambda: "dropped an item" in caplog.text)
    gate.set()
    calls.wait_for(2)
    worker.stop(wait=5)
    assert calls.items == [1, 2]


def test_stop_of_a_full_bounded_queue_worker_runs_what_is_queued_then_ends(
    sup: TaskSupervisor,
) -> None:
    calls = Calls()
    entered, gate = threading.Event(), threading.Event()

    def slow(item: int, **kwargs: Any) -> None:
        entered.set()
        assert gate.wait(10)
        calls.note(item)

    worker = BackgroundQueueWorker("full", slow, supervisor=sup, q=_OneSlotQueue)
    worker.start()
    worker.put_threadsafe(1)
    assert entered.wait(5)
    worker.put_threadsafe(2)  # the one slot is taken: no room for the stop sentinel
    wait_until(lambda: worker.stats()["queued"] == 1)
    stopper = threading.Thread(target=worker.stop)  # wait=True: no bound to fall back on
    stopper.start()
    gate.set()
    stopper.join(10)
    assert not stopper.is_alive(), "the stop sentinel was lost on a full queue"
    assert calls.items == [1, 2]
    assert not worker.is_active()


def test_queue_worker_async_put_is_for_its_own_loop(sup: TaskSupervisor) -> None:
    aloop = sup.create_aloop("qloop")
    calls = Calls()
    worker = BackgroundQueueWorker("aq", calls.note, supervisor=sup, loop="qloop")
    worker.start()
    aloop.call(worker.put, "from the loop")
    calls.wait_for(1)
    with pytest.raises(WrongLoopError, match="put_threadsafe"):
        asyncio.run(worker.put("from elsewhere"))
    assert worker.get_queue_obj() is not None
    worker.stop()
    assert calls.items == ["from the loop"]


def test_event_worker_runs_when_triggered_and_merges_triggers(
    sup: TaskSupervisor,
) -> None:
    calls = Calls()
    gate = threading.Event()

    def target(**kwargs: Any) -> None:
        calls.note()
        gate.wait(5)

    worker = BackgroundEventWorker("ev", target, supervisor=sup)
    worker.start()
    worker.trigger_threadsafe()
    calls.wait_for(1)
    for _ in range(3):  # while it runs: merged into one more run
        worker.trigger_threadsafe()
    assert worker.get_event_obj() is not None
    gate.set()
    calls.wait_for(2)
    worker.stop()
    assert len(calls.items) == 2


def test_event_worker_async_trigger_on_its_loop(sup: TaskSupervisor) -> None:
    calls = Calls()

    async def target(**kwargs: Any) -> None:
        calls.note()

    worker = BackgroundEventWorker("aev", target, supervisor=sup)
    worker.start()
    assert worker.aloop is not None and worker.aloop is sup.aloop
    worker.aloop.call(worker.trigger)
    calls.wait_for(1)
    worker.stop()


# ------------------------------------------------------------------ decorator


def _sync(**kwargs: Any) -> None:
    time.sleep(0.001)


async def _async(**kwargs: Any) -> None:
    await asyncio.sleep(0.001)


@pytest.mark.parametrize(
    ("fn", "options", "kind"),
    [
        (_sync, {}, BackgroundWorker),
        (_async, {}, BackgroundAsyncWorker),
        (_sync, {"interval": 1}, BackgroundIntervalWorker),
        (_async, {"delay": 1}, BackgroundIntervalWorker),
        (_sync, {"delay_before": 1}, BackgroundIntervalWorker),
        (_sync, {"i": 1, "priority": 3}, BackgroundIntervalWorker),
        (_sync, {"q": True}, BackgroundQueueWorker),
        (_sync, {"queue": asyncio.LifoQueue}, BackgroundQueueWorker),
        (_sync, {"event": True}, BackgroundEventWorker),
        (_async, {"e": True}, BackgroundEventWorker),
    ],
)
def test_decorator_chooses_the_worker_kind(
    fn: Any, options: dict[str, Any], kind: type[BackgroundWorker]
) -> None:
    worker = background_worker(**options)(fn)
    assert type(worker) is kind
    assert worker.name == fn.__name__


def test_bare_decorator_and_name_option(sup: TaskSupervisor) -> None:
    calls = Calls()

    @background_worker
    def bare(**kwargs: Any) -> None:
        pass

    @background_worker(name="custom", interval=0.01, supervisor=sup)
    def named(**kwargs: Any) -> bool:
        calls.note()
        return False  # one run, then stop

    assert isinstance(bare, BackgroundWorker) and bare.name == "bare"
    named.start()
    calls.wait_for(1)
    wait_until(lambda: named.is_stopped())
    assert named.name == "custom"


# ------------------------------------------------------------- life cycle


def test_start_before_the_supervisor_raises_runtime_error() -> None:
    worker = BackgroundWorker("early", _sync, supervisor=TaskSupervisor())
    with pytest.raises(RuntimeError, match="start"):
        worker.start()
    assert not worker.is_active()


def test_target_returning_false_stops_the_worker(sup: TaskSupervisor) -> None:
    calls = Calls()

    def once(**kwargs: Any) -> bool:
        calls.note()
        return False

    for kind in (BackgroundWorker, BackgroundAsyncWorker):
        worker = kind(f"once_{kind.__name__}", once, supervisor=sup)
        worker.start()
        wait_until(worker.is_stopped)
        assert not worker.is_active()
        assert worker.name not in sup.get_schedulers()
    assert len(calls.items) == 2


def test_on_error_is_called_and_the_worker_goes_on(sup: TaskSupervisor) -> None:
    calls = Calls()
    errors: list[Any] = []

    def failing(item: int, **kwargs: Any) -> None:
        calls.note(item)
        raise ValueError(item)

    worker = BackgroundQueueWorker(
        "err",
        failing,
        supervisor=sup,
        on_error=lambda **kw: errors.append(kw),
        on_error_kwargs={"tag": 1},
    )
    worker.start()
    worker.put_threadsafe(1)
    worker.put_threadsafe(2)
    calls.wait_for(2)
    worker.stop()
    assert errors == [{"tag": 1}, {"tag": 1}]
    assert worker.stats()["errors"] == 2


def test_without_on_error_a_failing_target_is_logged_and_stops_the_worker(
    sup: TaskSupervisor, caplog: pytest.LogCaptureFixture
) -> None:
    async def failing(**kwargs: Any) -> None:
        raise ValueError("boom")

    worker = BackgroundAsyncWorker("dies", failing, supervisor=sup)
    with caplog.at_level(logging.ERROR, logger="neoleasepool"):
        worker.start()
        wait_until(worker.is_stopped)
    assert "worker target failed" in caplog.text
    assert not worker.is_active()


def test_restart_passes_new_kwargs(sup: TaskSupervisor) -> None:
    calls = Calls()
    worker = BackgroundEventWorker("re", lambda **kw: calls.note(kw["n"]), supervisor=sup)
    worker.start(n=1)
    worker.trigger_threadsafe()
    calls.wait_for(1)
    worker.restart(n=2)
    worker.trigger_threadsafe()
    calls.wait_for(2)
    worker.stop()
    assert calls.items == [1, 2]


def test_loop_option_and_start_loop_override_pick_the_aloop(
    sup: TaskSupervisor,
) -> None:
    sup.create_aloop("one")
    two = sup.create_aloop("two")
    calls = Calls()

    async def target(**kwargs: Any) -> None:
        calls.note()

    worker = BackgroundEventWorker("pick", target, supervisor=sup, loop="one")
    worker.start(_loop=two)
    worker.trigger_threadsafe()
    calls.wait_for(1)
    worker.stop()
    assert calls.threads == ["supervisor_aloop_two"]
    assert worker.worker_loop is two.loop


def test_workers_stop_with_their_supervisor() -> None:
    supervisor = TaskSupervisor(id="owner")
    supervisor.start()
    supervisor.create_aloop("x", default=True)
    workers = [
        BackgroundWorker("a", lambda **kw: time.sleep(0.001), supervisor=supervisor),
        BackgroundIntervalWorker("b", _async, interval=0.01, supervisor=supervisor),
        BackgroundQueueWorker("c", _sync, supervisor=supervisor),
        BackgroundEventWorker("d", _sync, supervisor=supervisor),
    ]
    for worker in workers:
        worker.start()
    assert list(supervisor.get_schedulers()) == ["a", "b", "c", "d"]
    supervisor.stop()
    assert all(w.is_stopped() and not w.is_active() for w in workers)


def test_a_target_may_stop_its_own_worker(sup: TaskSupervisor) -> None:
    def stop_sync(**kwargs: Any) -> None:
        kwargs["_worker"].stop()

    async def stop_async(**kwargs: Any) -> None:
        kwargs["_worker"].stop()

    for worker in (
        BackgroundWorker("self_sync", stop_sync, supervisor=sup),
        BackgroundAsyncWorker("self_async", stop_async, supervisor=sup),
        BackgroundAsyncWorker("self_pool", stop_sync, supervisor=sup),
    ):
        worker.start()
        wait_until(worker.is_stopped)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_stop_waits_without_its_lock_so_the_target_may_stop_the_worker_too(
    sup: TaskSupervisor, kind: str
) -> None:
    stopping = threading.Event()

    def stop_sync(**kwargs: Any) -> bool:
        stopping.wait(5)
        kwargs["_worker"].stop()  # takes the worker's lock
        return True

    async def stop_async(**kwargs: Any) -> bool:
        return stop_sync(**kwargs)  # on the aloop thread, which stop() waits for

    worker: BackgroundWorker = (
        BackgroundWorker("both_sync", stop_sync, supervisor=sup)
        if kind == "sync"
        else BackgroundAsyncWorker("both_async", stop_async, supervisor=sup)
    )
    worker.before_stop = stopping.set  # type: ignore[method-assign]
    worker.start()
    stopped = concurrent.futures.Future[None]()

    def stop() -> None:
        worker.stop()
        stopped.set_result(None)

    stopper = threading.Thread(target=stop, name="stopper")
    stopper.start()
    try:
        stopped.result(timeout=5)
        assert worker.is_stopped() and worker.name not in sup.get_schedulers()
    finally:
        if not stopped.done():
            worker._stopped.set()  # unblock the deadlocked stop() so the test ends
        stopper.join(5)


def test_stop_with_seconds_cancels_a_stuck_async_target(sup: TaskSupervisor) -> None:
    cancelled, running = threading.Event(), threading.Event()

    async def stuck(**kwargs: Any) -> None:
        running.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    worker = BackgroundAsyncWorker("stuck", stuck, supervisor=sup)
    worker.start()
    # Stuck means running: a stop before the target's first step cancels
    # the worker's loop with nothing inside it to see the cancel.
    assert running.wait(30)
    begin = time.monotonic()
    worker.stop(wait=0.1)
    assert time.monotonic() - begin < 5
    assert cancelled.wait(5)
    assert worker.is_stopped()


def test_stats_and_repr(sup: TaskSupervisor) -> None:
    worker = BackgroundQueueWorker("st", _sync, supervisor=sup)
    worker.start()
    json.dumps(worker.stats())
    assert "active" in repr(worker)
    worker.stop()
    assert "stopped" in repr(worker)


def _append_line(item: str, path: str, **kwargs: Any) -> None:
    with open(path, "a") as handle:
        handle.write(f"{item}:{sorted(kwargs)}\n")


def test_queue_worker_sync_target_in_a_process_pool(sup: TaskSupervisor, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    pool = concurrent.futures.ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("forkserver")
    )
    worker = BackgroundQueueWorker("mp", _append_line, supervisor=sup, pool=pool)
    try:
        worker.start(path=str(out))
        worker.put_threadsafe("a")
        worker.put_threadsafe("b")
        worker.stop()
    finally:
        pool.shutdown(wait=True)
    assert out.read_text().splitlines() == ["a:['_name', 'o']", "b:['_name', 'o']"]
    assert worker.stats()["errors"] == 0


def test_sync_worker_refuses_a_process_pool() -> None:
    supervisor = TaskSupervisor(id="mpsync")
    supervisor.set_thread_pool(
        pool=concurrent.futures.ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("forkserver")
        )
    )
    supervisor.start()
    try:
        with pytest.raises(TypeError, match="thread pool"):
            BackgroundWorker("t", _sync, supervisor=supervisor).start()
    finally:
        supervisor.stop()


def test_supervisor_stop_drains_a_queue_worker_with_a_sync_target() -> None:
    supervisor = TaskSupervisor(id="drain")
    supervisor.start()
    calls = Calls()
    worker = BackgroundQueueWorker("q", calls.note, supervisor=supervisor)
    worker.start()
    for i in range(20):
        worker.put_threadsafe(i)
    supervisor.stop()
    assert calls.items == list(range(20))


def test_start_after_stop_without_wait_waits_for_the_old_loop(
    sup: TaskSupervisor,
) -> None:
    calls = Calls()
    gate = threading.Event()

    def slow(item: int, **kwargs: Any) -> None:
        gate.wait(5)
        calls.note(item)

    worker = BackgroundQueueWorker("again", slow, supervisor=sup)
    worker.start()
    worker.put_threadsafe(1)
    worker.stop(wait=False)
    threading.Timer(0.05, gate.set).start()
    worker.start()  # waits for the first run's loop to drain and exit
    worker.put_threadsafe(2)
    calls.wait_for(2)
    assert worker.is_active() and worker.name in sup.get_schedulers()
    worker.stop()
    assert calls.items == [1, 2]
