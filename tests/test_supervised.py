"""The blocking facades (issue 5), used from plain synchronous code.

Every test builds its own :class:`TaskSupervisor` and runs on both the
thread and the process backend unless the behaviour is backend-free.  The
stop paths (drain, cancel, bounds, signals) are in
``test_supervised_stop.py``, names and the registry in
``test_supervised_registry.py``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from neoleasepool import (
    BackgroundIntervalWorker,
    ExecutorLease,
    LeaseExpiredError,
    LeaseUnavailableError,
    SupervisedLease,
    SupervisedLeaseManager,
    SupervisedWorkGrinder,
    TaskSupervisor,
    WrongLoopError,
)

from .supervised_work import FileGate, fail_with, gated, getpid, square, touch_then
from .support import run, started_supervisor, wait_until

BACKENDS = ["thread", "process"]


@pytest.fixture
def sup(request: pytest.FixtureRequest) -> Iterator[TaskSupervisor]:
    with started_supervisor(f"sv-{request.node.name}", max_threads=4, stop_wait=15) as s:
        yield s


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make_pool(
    sup: TaskSupervisor, backend: str, name: str = "cpu", **kwargs: Any
) -> SupervisedLeaseManager:
    kwargs.setdefault("max_pools", 2)
    kwargs.setdefault("workers_per_pool", 1)
    return sup.create_lease_manager(name, backend=backend, **kwargs)


# ------------------------------------------------------------- the README


def test_readme_flow_leases_runs_grinds_and_reports(sup: TaskSupervisor, backend: str) -> None:
    pool = sup.create_lease_manager("cpu", backend=backend, max_pools=2, workers_per_pool=2)
    with pool.lease(owner="job-1", lease_seconds=30) as lease:
        assert isinstance(lease, SupervisedLease)
        assert lease.owner == "job-1" and lease.active
        assert lease.run(pow, 2, 10) == 1024
        fut = lease.executor.submit(pow, 3, 3)
        assert isinstance(fut, concurrent.futures.Future)
        assert fut.result(timeout=30) == 27
        assert pool.leased_count == 1
    assert not lease.active
    assert pool.leased_count == 0

    grinder = sup.create_work_grinder(
        "squares", pool, batch_size_threshold=10, max_wait_seconds=0.5
    )
    assert isinstance(grinder, SupervisedWorkGrinder)
    assert grinder.submit(pow, 4, 2) == 16
    futs = [grinder.enqueue(pow, i, 2) for i in range(100)]
    assert all(isinstance(f, concurrent.futures.Future) for f in futs)
    assert [f.result(timeout=30) for f in futs] == [i * i for i in range(100)]

    pool_stats, grinder_stats = pool.stats(), grinder.stats()
    json.dumps(pool_stats), json.dumps(grinder_stats)  # plain data
    assert pool_stats["name"] == "cpu" and pool_stats["backend"] == backend
    assert pool_stats["leases_granted"] >= 2  # ours plus the grinder's batches
    assert grinder_stats["name"] == "squares" and grinder_stats["manager"] == "cpu"
    assert grinder_stats["items_submitted"] == 101
    assert grinder_stats["items_completed"] == 101
    info = sup.get_info()
    assert info.active
    assert info.schedulers == {"cpu": pool, "squares": grinder}
    assert pool.aloop.name in info.aloops


def test_process_backend_runs_work_in_child_processes(sup: TaskSupervisor) -> None:
    pool = make_pool(sup, "process")
    grinder = sup.create_work_grinder("g", pool, batch_size_threshold=1, max_wait_seconds=0.05)
    assert pool.run(getpid) != os.getpid()
    assert grinder.submit(getpid) != os.getpid()


# ------------------------------------------------------ acquire and release


def test_acquire_and_release_lend_and_return_a_pool(sup: TaskSupervisor, backend: str) -> None:
    pool = make_pool(sup, backend, max_pools=2)
    first = pool.acquire(owner="a", lease_seconds=30)
    second = pool.acquire(owner="b")
    assert isinstance(first.lease, ExecutorLease)
    assert pool.leased_count == 2 and pool.total_count == 2
    assert first.run(square, 5) == 25
    assert {lease["owner"] for lease in pool.stats()["leases"]} == {"a", "b"}

    pool.release(first)  # by facade object
    pool.release(second.lease_id)  # by id
    assert pool.leased_count == 0
    assert pool.available_count == pool.total_count == 1  # back to target=min_pools
    assert not first.active and not second.active
    pool.release(first)  # idempotent
    first.release()  # idempotent
    with pytest.raises(LeaseExpiredError):
        first.run(square, 1)
    assert pool.stats()["leases_released"] == 2


def test_lease_context_releases_even_when_the_block_raises(
    sup: TaskSupervisor, backend: str
) -> None:
    pool = make_pool(sup, backend, max_pools=1)
    with pytest.raises(KeyError, match="boom"), pool.lease(owner="x") as lease:
        lease.run(fail_with, "boom")
    assert not lease.active
    assert pool.leased_count == 0
    with pool.lease(wait=False) as again:  # the pool is back
        assert again.run(square, 3) == 9


def test_run_one_liner_leases_runs_and_releases(sup: TaskSupervisor, backend: str) -> None:
    pool = make_pool(sup, backend, max_pools=1)
    assert pool.run(square, 7) == 49
    assert pool.run(square, 8, timeout=30) == 64
    stats = pool.stats()
    assert stats["leases_granted"] == 2 and stats["leases_released"] == 2
    assert pool.leased_count == 0


def test_acquire_with_all_pools_leased_times_out_and_leaves_no_waiter(
    sup: TaskSupervisor, backend: str
) -> None:
    pool = make_pool(sup, backend, max_pools=1)
    held = pool.acquire()
    with pytest.raises(TimeoutError):
        pool.acquire(timeout=0.2)
    with pytest.raises(TimeoutError):
        pool.run(square, 2, timeout=0.2)
    with pytest.raises(TimeoutError), pool.lease(timeout=0.2):
        pass
    with pytest.raises(LeaseUnavailableError):
        pool.acquire(wait=False)
    assert pool.stats()["waiting"] == 0
    held.release(timeout=10)
    assert pool.run(square, 2, timeout=30) == 4  # no lost pool


def test_run_timeout_bounds_the_wait_for_a_pool_and_the_call_together(
    sup: TaskSupervisor, tmp_path: Path
) -> None:
    pool = make_pool(sup, "thread", max_pools=1)
    gate = FileGate(tmp_path)
    held = pool.acquire()
    hold_for = threading.Event()  # never set: a bounded wait of 1.5 s

    def release_later() -> None:
        wait_until(lambda: pool.stats()["waiting"] == 1)
        hold_for.wait(1.5)
        held.release()

    releaser = threading.Thread(target=release_later)
    releaser.start()
    began = time.monotonic()
    try:
        with pytest.raises(TimeoutError):
            pool.run(gated, *gate.args("late"), timeout=2.0)
        elapsed = time.monotonic() - began
    finally:
        gate.open()
        releaser.join(30)
    assert 1.4 < elapsed < 3.0, f"run(timeout=2.0) gave up after {elapsed:.2f}s"


def test_acquire_waits_for_a_release_from_another_thread(
    sup: TaskSupervisor, backend: str
) -> None:
    pool = make_pool(sup, backend, max_pools=1)
    held = pool.acquire()
    releaser = threading.Thread(target=lambda: (wait_until(lambda: pool.stats()["waiting"] == 1),
                                                held.release()))
    releaser.start()
    try:
        with pool.lease(timeout=30) as lease:
            assert lease.run(square, 6) == 36
    finally:
        releaser.join()


def test_lease_run_timeout_cancels_a_call_that_has_not_started(
    sup: TaskSupervisor, backend: str, tmp_path: Path
) -> None:
    pool = make_pool(sup, backend, max_pools=1, workers_per_pool=1)
    gate = FileGate(tmp_path)
    marker = tmp_path / "ran"
    with pool.lease() as lease:
        blocker = lease.executor.submit(gated, *gate.args("done"))
        wait_until(gate.has_started, timeout=30)
        with pytest.raises(TimeoutError):
            lease.run(touch_then, str(marker), 1, timeout=0.2)
        gate.open()
        assert blocker.result(timeout=30) == "done"
        assert lease.run(square, 2) == 4  # the worker is free again
    if backend == "thread":
        # A ProcessPoolExecutor moves a call into its call queue (marking it
        # running) as soon as a worker slot frees up, so there the call may
        # already be past cancelling; the thread pool keeps it queued.
        assert not marker.exists()


# ------------------------------------------------------------- the grinder


def test_grinder_submit_timeout_raises_and_cancels_the_queued_item(
    sup: TaskSupervisor, backend: str, tmp_path: Path
) -> None:
    pool = make_pool(sup, backend, max_pools=1, workers_per_pool=1)
    grinder = sup.create_work_grinder("g", pool, batch_size_threshold=1, max_wait_seconds=0.01)
    gate = FileGate(tmp_path)
    marker = tmp_path / "ran"
    blocker = grinder.enqueue(gated, *gate.args("done"))
    wait_until(gate.has_started, timeout=30)
    with pytest.raises(TimeoutError):
        grinder.submit(touch_then, str(marker), 1, timeout=0.2)
    gate.open()
    assert blocker.result(timeout=30) == "done"
    assert grinder.submit(square, 9, timeout=30) == 81
    stats = grinder.stats(timeout=10)
    assert stats["items_cancelled"] == 1
    assert stats["items_completed"] == 2
    assert not marker.exists()


def test_grinder_serves_blocking_submits_from_many_threads(sup: TaskSupervisor) -> None:
    pool = make_pool(sup, "thread", max_pools=2, workers_per_pool=2)
    grinder = sup.create_work_grinder("g", pool, batch_size_threshold=8, max_wait_seconds=0.01)
    results: dict[int, list[int]] = {}

    def feed(worker: int) -> None:
        results[worker] = [grinder.submit(square, worker * 100 + i, timeout=30) for i in range(50)]

    threads = [threading.Thread(target=feed, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {n: [(n * 100 + i) ** 2 for i in range(50)] for n in range(8)}
    assert grinder.stats()["items_completed"] == 400


def test_grinder_reports_the_callables_own_exception(sup: TaskSupervisor, backend: str) -> None:
    pool = make_pool(sup, backend)
    grinder = sup.create_work_grinder("g", pool, batch_size_threshold=2, max_wait_seconds=0.01)
    with pytest.raises(KeyError, match="bad"):
        grinder.submit(fail_with, "bad")
    future = grinder.enqueue(fail_with, "worse")
    assert isinstance(future.exception(timeout=30), KeyError)
    assert grinder.stats()["items_failed"] == 2


def test_create_work_grinder_accepts_the_managers_name(sup: TaskSupervisor) -> None:
    pool = make_pool(sup, "thread")
    grinder = sup.create_work_grinder("g", "cpu", max_wait_seconds=0.01)
    assert grinder.manager is pool and grinder.aloop is pool.aloop
    assert grinder.submit(square, 3) == 9
    with pytest.raises(ValueError, match="no supervised lease manager"):
        sup.create_work_grinder("h", "nope")
    other = sup.create_aloop("other")
    with pytest.raises(ValueError, match="its manager's aloop"):
        sup.create_work_grinder("h", pool, aloop=other)
    assert "h" not in sup.get_schedulers()


# ----------------------------------------------------------------- sizing


def test_notify_scale_changed_from_another_thread_grows_and_shrinks_pools(
    sup: TaskSupervisor, backend: str
) -> None:
    devices: list[str] = []
    pool = make_pool(
        sup, backend, max_pools=4, min_pools=1, units_per_pool=2,
        size_provider=lambda: len(devices), check_interval=600,
    )
    assert pool.total_count == 1

    def connect() -> None:
        devices.extend(f"dev-{n}" for n in range(7))  # ceil(7 / 2) = 4 pools
        pool.notify_scale_changed()

    helper = threading.Thread(target=connect)
    helper.start()
    helper.join()
    assert pool.desired_executor_count() == 4
    wait_until(lambda: pool.total_count == 4, timeout=30)
    with pool.lease() as lease:
        assert lease.run(square, 3) == 9

    helper = threading.Thread(target=lambda: (devices.clear(), pool.notify_scale_changed()))
    helper.start()
    helper.join()
    wait_until(lambda: pool.total_count == 1, timeout=30)
    assert pool.stats()["pools_retired"] >= 3


@pytest.mark.parametrize("on_manager_aloop", [False, True], ids=["own-aloop", "manager-aloop"])
def test_interval_worker_polling_a_device_list_drives_adaptive_sizing(
    sup: TaskSupervisor, on_manager_aloop: bool
) -> None:
    connected: list[str] = []  # what the size provider counts
    device_list = ["a", "b", "c", "d", "e"]  # what the "hardware" reports
    pool = make_pool(
        sup, "thread", max_pools=3, units_per_pool=2,
        size_provider=lambda: len(connected), check_interval=600,
    )
    threads: set[str] = set()

    async def poll_devices(**kwargs: Any) -> None:
        threads.add(threading.current_thread().name)
        if connected != device_list:
            connected[:] = device_list
            pool.notify_scale_changed()  # from the signal's own thread

    loop = pool.aloop if on_manager_aloop else sup.create_aloop("devices")
    worker = BackgroundIntervalWorker(
        "device-poller", poll_devices, supervisor=sup, interval=0.02, loop=loop
    )
    worker.start()
    try:
        wait_until(lambda: pool.total_count == 3, timeout=30)  # ceil(5 / 2)
        device_list[:] = ["a"]
        wait_until(lambda: pool.total_count == 1, timeout=30)
    finally:
        worker.stop()
    assert threads == {loop.thread.name if loop.thread else ""}


# ----------------------------------------------------------- async access


def test_manager_and_aloop_serve_async_code_on_the_aloop(
    sup: TaskSupervisor, backend: str
) -> None:
    pool = make_pool(sup, backend)
    grinder = sup.create_work_grinder("g", pool, max_wait_seconds=0.01)

    async def on_the_aloop() -> tuple[int, int, int, int]:
        async with await pool.manager.acquire(owner="async") as lease:
            direct = await lease.run(square, 4)
        via_twin = await pool.arun(square, 5)
        async with pool.alease() as held:
            via_alease = await held.run(square, 6)
        via_grinder = await grinder.grinder.submit(square, 7)
        return direct, via_twin, via_alease, via_grinder

    assert pool.aloop.call(on_the_aloop) == (16, 25, 36, 49)
    assert pool.leased_count == 0


def test_async_code_on_another_loop_gets_wrong_loop_error_and_uses_the_twins(
    sup: TaskSupervisor, backend: str
) -> None:
    pool = make_pool(sup, backend)
    grinder = sup.create_work_grinder("g", pool, batch_size_threshold=2, max_wait_seconds=0.01)

    async def elsewhere() -> list[int]:
        with pytest.raises(WrongLoopError, match="acquire"):
            await pool.manager.acquire()
        with pytest.raises(WrongLoopError):
            await grinder.grinder.submit(square, 1)
        results = [await pool.arun(square, 2)]
        async with pool.alease(owner="other-loop") as lease:
            assert pool.leased_count == 1
            results.append(await asyncio.wrap_future(lease.executor.submit(square, 3)))
        assert pool.leased_count == 0
        results.append(await grinder.asubmit(square, 4))
        results.extend(await asyncio.gather(*(grinder.asubmit(square, i) for i in range(5))))
        return results

    assert run(elsewhere()) == [4, 9, 16, 0, 1, 4, 9, 16]


def test_cancelling_an_arun_from_another_loop_leaves_no_lease(
    sup: TaskSupervisor, tmp_path: Path
) -> None:
    pool = make_pool(sup, "thread", max_pools=1)
    held = pool.acquire()

    async def elsewhere() -> None:
        task = asyncio.ensure_future(pool.arun(square, 2))
        await asyncio.sleep(0)  # let it hop over and wait for a pool
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: wait_until(lambda: pool.stats()["waiting"] == 1)
        )
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(elsewhere())
    wait_until(lambda: pool.stats()["waiting"] == 0)
    held.release()
    assert pool.leased_count == 0 and pool.available_count == 1
