"""The "dask" backend on a real Dask ``LocalCluster`` (processes, 127.0.0.1).

One cluster of two single-threaded worker processes serves the whole module
(starting one takes seconds).  Its scheduler runs with
``allowed-failures: 0`` so that a call whose worker dies fails at once with
``KilledWorker`` instead of being retried on another worker.  Calls that
must stay on the cluster while the test acts block on a Dask ``Event``.

The tests that need Dask are skipped, with the reason shown, where the
``dask`` extra is not installed; the check that the backend then refuses to
start runs everywhere.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.util
import itertools
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from neoleasepool import (
    DaskWorkLostError,
    LeasedExecutorManager,
    UnsupportedBackendError,
    WorkGrinder,
    backend_availability,
)
from neoleasepool.backends.dask import DaskExecutor
from tests.conftest import service_owned
from tests.dask_work import block_until, echo_kwargs, fresh_token, kill_worker, square
from tests.support import await_until, run, wait_until

HAVE_DASK = importlib.util.find_spec("distributed") is not None
needs_dask = pytest.mark.skipif(
    not HAVE_DASK,
    reason="the dask extra is not installed (pip install neoleasepool[dask]; tox -e dask)",
)

#: Generous bound for anything that crosses to the cluster and back.
DEADLINE = 30.0

_names = itertools.count()


def _event_name(label: str) -> str:
    return f"test-{label}-{next(_names)}-{time.monotonic_ns()}"


# ----------------------------------------------------------- no distributed


def test_importing_neoleasepool_does_not_import_dask() -> None:
    code = (
        "import sys, neoleasepool\n"
        "assert 'distributed' not in sys.modules and 'dask' not in sys.modules\n"
        "print('ok')"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "ok"


def test_without_distributed_the_backend_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == "distributed" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(UnsupportedBackendError, match=r"pip install neoleasepool\[dask\]"):
        LeasedExecutorManager(backend="dask", max_pools=1, dask_address="tcp://127.0.0.1:1")
    assert "pip install neoleasepool[dask]" in (backend_availability()["dask"] or "")


# ---------------------------------------------------------------- options


@needs_dask
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "exactly one of dask_client"),
        ({"dask_address": "tcp://a:1", "dask_client": object()}, "exactly one of dask_client"),
        ({"dask_address": ""}, "dask_address must be a scheduler address"),
        ({"dask_address": 8786}, "dask_address must be a scheduler address"),
        ({"dask_client": object()}, "dask_client must be a distributed.Client"),
        ({"dask_address": "tcp://a:1", "dask_wrkers": ["x"]}, "unknown option.*'dask_wrkers'"),
        ({"dask_address": "tcp://a:1", "max_workers": 2}, r"unknown option\(s\) \['max_workers'\]"),
        ({"dask_address": "tcp://a:1", "dask_workers": []}, "dask_workers must be"),
        ({"dask_address": "tcp://a:1", "dask_workers": [None]}, "dask_workers must be"),
        ({"dask_address": "tcp://a:1", "dask_workers": True}, "dask_workers must be"),
    ],
)
def test_bad_options_are_rejected_at_construction(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LeasedExecutorManager(backend="dask", max_pools=1, **options)


@needs_dask
def test_security_goes_only_with_an_address() -> None:
    client_like = type("FakeClient", (), {"get_executor": lambda self, **kw: None})()
    with pytest.raises(ValueError, match="dask_security applies only with dask_address"):
        LeasedExecutorManager(
            backend="dask", max_pools=1, dask_client=client_like, dask_security=True
        )
    manager = LeasedExecutorManager(
        backend="dask", max_pools=1, dask_address="tls://a:1", dask_security=True,
        dask_workers="tls://w:1",
    )
    assert manager.backend == "dask"


# ---------------------------------------------------------------- cluster


@dataclass
class Cluster:
    cluster: Any
    client: Any

    @property
    def address(self) -> str:
        return str(self.cluster.scheduler_address)

    def event(self, name: str) -> Any:
        from distributed import Event

        return Event(name, client=self.client)

    def worker_addresses(self) -> list[str]:
        return sorted(self.client.scheduler_info()["workers"])

    def wait_for_workers(self, count: int = 2) -> None:
        self.client.wait_for_workers(count, timeout=DEADLINE)


def _cluster_owned(cluster: Any) -> tuple[set[threading.Thread], set[int]]:
    """The worker processes of ``cluster``'s nannies and their threads."""
    pids: set[int] = set()
    queues = []
    for nanny in list(cluster.workers.values()):
        worker_process = getattr(nanny, "process", None)
        if worker_process is None:
            continue
        queues += [worker_process.init_result_q, worker_process.child_stop_q]
        if worker_process.process is not None and worker_process.process.pid:
            pids.add(worker_process.process.pid)
    feeders = {getattr(q, "_thread", None) for q in queues if q is not None}
    threads = {
        t
        for t in threading.enumerate()
        if t in feeders or t.name.startswith("AsyncProcess Dask Worker process")
    }
    return threads, pids


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[Cluster]:
    if not HAVE_DASK:
        pytest.skip("the dask extra is not installed (pip install neoleasepool[dask])")
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        )
    client = Client(cluster, set_as_default=False)

    def owned() -> tuple[set[threading.Thread], set[int]]:
        return _cluster_owned(cluster)

    service_owned.append(owned)
    try:
        yield Cluster(cluster, client)
    finally:
        service_owned.remove(owned)
        client.close()
        cluster.close()
        # The cluster's processes and watcher threads end with it.
        wait_until(lambda: not any(_cluster_owned(cluster)), timeout=DEADLINE)
        wait_until(
            lambda: not [
                t for t in threading.enumerate() if t.name.startswith("AsyncProcess Dask")
            ],
            timeout=DEADLINE,
        )


def make(dask: Cluster, **kwargs: Any) -> LeasedExecutorManager:
    kwargs.setdefault("max_pools", 2)
    kwargs.setdefault("workers_per_pool", 2)
    kwargs.setdefault("check_interval", 120.0)
    if "dask_address" not in kwargs:
        kwargs.setdefault("dask_client", dask.client)
    return LeasedExecutorManager(backend="dask", **kwargs)


@needs_dask
def test_lease_runs_work_on_the_cluster(dask_cluster: Cluster) -> None:
    async def main() -> None:
        manager = make(dask_cluster)
        await manager.start()
        try:
            async with await manager.acquire(owner="t") as lease:
                assert await lease.run(square, 7) == 49
                futures = [lease.executor.submit(square, i) for i in range(10)]
                assert [f.result(timeout=DEADLINE) for f in futures] == [
                    i * i for i in range(10)
                ]
                # Keyword arguments reach the callable, even Dask-like names.
                kwargs = {"priority": 3, "workers": "none", "pure": True, "key": "k"}
                assert await lease.run(echo_kwargs, **kwargs) == kwargs
            stats = manager.stats()
            assert stats["backend"] == "dask"
            details = stats["backend_details"]
            assert details["scheduler"] == dask_cluster.address
            assert details["owns_client"] is False
            assert details["client_status"] == "running"
        finally:
            await manager.stop()

    run(main(), timeout=DEADLINE * 2)


@needs_dask
def test_calls_are_not_deduplicated(dask_cluster: Cluster) -> None:
    async def main() -> None:
        manager = make(dask_cluster, workers_per_pool=4)
        await manager.start()
        try:
            async with await manager.acquire() as lease:
                futures = [lease.executor.submit(fresh_token) for _ in range(4)]
                values = [f.result(timeout=DEADLINE) for f in futures]
            assert len(set(values)) == 4  # Dask's default pure=True would give one
        finally:
            await manager.stop()

    run(main(), timeout=DEADLINE * 2)


@needs_dask
def test_workers_per_pool_caps_calls_on_the_cluster(dask_cluster: Cluster) -> None:
    release = _event_name("release")
    starts = [_event_name("started") for _ in range(4)]
    executor = DaskExecutor(dask_cluster.client, 2, "capped")
    futures = [executor.submit(block_until, s, release, i) for i, s in enumerate(starts)]
    for name in starts[:2]:
        assert dask_cluster.event(name).wait(timeout=DEADLINE)
    # Two calls run; the other two wait here, not on the cluster.
    assert "2/2 on the cluster with 2 waiting" in repr(executor)
    assert not dask_cluster.event(starts[2]).is_set()
    assert futures[0].running() and not futures[3].running()
    assert futures[3].cancel()  # still local: cancellable
    dask_cluster.event(release).set()
    assert [f.result(timeout=DEADLINE) for f in futures[:3]] == [0, 1, 2]
    assert futures[3].cancelled()
    executor.shutdown()
    assert "shut down 0/2 on the cluster with 0 waiting" in repr(executor)
    with pytest.raises(RuntimeError, match="shut down"):
        executor.submit(square, 1)


@needs_dask
def test_map_sends_each_chunk_as_one_task(
    dask_cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks = itertools.count()
    original = DaskExecutor.submit

    def counted(self: DaskExecutor, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        next(tasks)
        return original(self, fn, *args, **kwargs)

    monkeypatch.setattr(DaskExecutor, "submit", counted)

    async def main() -> None:
        manager = make(dask_cluster, max_pools=1, workers_per_pool=2)
        await manager.start()
        grinder = WorkGrinder(executor_manager=manager, max_wait_seconds=60)
        await grinder.start()
        try:
            results = [r async for r in grinder.map(square, range(2000), chunk_size=250)]
            assert results == [i * i for i in range(2000)]
        finally:
            await grinder.stop()
            await manager.stop()
        assert grinder.stats()["items_submitted"] == 8  # 2,000 inputs in chunks of 250
        assert next(tasks) == 8  # one cluster task per chunk

    run(main(), timeout=DEADLINE * 2)


@needs_dask
def test_grinder_batches_run_on_the_cluster(dask_cluster: Cluster) -> None:
    async def main() -> None:
        manager = make(dask_cluster, max_pools=2, workers_per_pool=2)
        await manager.start()
        grinder = WorkGrinder(
            executor_manager=manager, batch_size_threshold=50, max_wait_seconds=0.05
        )
        await grinder.start()
        try:
            results = await asyncio.gather(*(grinder.submit(square, i) for i in range(300)))
            assert results == [i * i for i in range(300)]
            with pytest.raises(ZeroDivisionError):
                await grinder.submit(divmod, 1, 0)
        finally:
            await grinder.stop()
            await manager.stop()
        stats = grinder.stats()
        assert stats["items_completed"] == 300 and stats["items_failed"] == 1
        assert stats["batches_run"] >= 6

    run(main(), timeout=DEADLINE * 2)


@needs_dask
def test_revoked_lease_cancels_its_calls_on_the_cluster(dask_cluster: Cluster) -> None:
    started, release = _event_name("started"), _event_name("release")

    async def main() -> None:
        manager = make(dask_cluster, max_pools=1, workers_per_pool=1, lease_grace_seconds=0)
        await manager.start()
        try:
            lease = await manager.acquire(lease_seconds=0.3)
            future = lease.executor.submit(block_until, started, release, 1)
            assert await asyncio.to_thread(dask_cluster.event(started).wait, DEADLINE)
            await await_until(lambda: manager.stats()["leases_revoked"] == 1, timeout=DEADLINE)
            with pytest.raises(concurrent.futures.CancelledError, match="terminated"):
                future.result(timeout=DEADLINE)
            # The cancelled task ran on (Dask cannot stop a running task):
            # let it end, then a fresh lease works.
            dask_cluster.event(release).set()
            async with await manager.acquire() as fresh:
                assert await fresh.run(square, 5) == 25
        finally:
            dask_cluster.event(release).set()
            await manager.stop()

    run(main(), timeout=DEADLINE * 3)


@needs_dask
def test_a_killed_worker_fails_only_its_call_and_the_pool_is_replaced(
    dask_cluster: Cluster,
) -> None:
    from distributed import KilledWorker

    dask_cluster.wait_for_workers(2)
    started, release = _event_name("started"), _event_name("release")

    async def main() -> None:
        manager = make(dask_cluster, max_pools=1, workers_per_pool=2)
        await manager.start()
        try:
            lease = await manager.acquire()
            survivor = lease.executor.submit(block_until, started, release, 7)
            # The survivor holds one worker's only thread: the victim goes to
            # the other worker and kills it.
            assert await asyncio.to_thread(dask_cluster.event(started).wait, DEADLINE)
            victim = lease.executor.submit(kill_worker)
            with pytest.raises(KilledWorker):
                await asyncio.wrap_future(victim)
            await await_until(lambda: manager.stats()["pools_broken"] == 1, timeout=DEADLINE)
            # The other call was not touched by the replacement.
            dask_cluster.event(release).set()
            assert await asyncio.wrap_future(survivor) == 7
            # The lease now holds a fresh pool, which works.
            assert await lease.run(square, 6) == 36
            await lease.release()
            stats = manager.stats()
            assert stats["pools_created"] == 2 and stats["pools_retired"] >= 1
        finally:
            dask_cluster.event(release).set()
            await manager.stop()

    run(main(), timeout=DEADLINE * 3)
    dask_cluster.wait_for_workers(2)  # the nanny restarts the worker


@needs_dask
def test_a_cluster_restart_fails_calls_clearly_and_work_goes_on(dask_cluster: Cluster) -> None:
    dask_cluster.wait_for_workers(2)
    started, release = _event_name("started"), _event_name("release")

    async def main() -> None:
        manager = make(dask_cluster, max_pools=1, workers_per_pool=2)
        await manager.start()
        grinder = WorkGrinder(executor_manager=manager, batch_size_threshold=10,
                              max_wait_seconds=0.05)
        await grinder.start()
        try:
            lease = await manager.acquire()
            in_flight = lease.executor.submit(block_until, started, release, 1)
            assert await asyncio.to_thread(dask_cluster.event(started).wait, DEADLINE)
            await asyncio.to_thread(dask_cluster.client.restart)
            with pytest.raises(DaskWorkLostError, match=r"client.restart\(\)"):
                await asyncio.wrap_future(in_flight)
            await await_until(lambda: manager.stats()["pools_broken"] == 1, timeout=DEADLINE)
            assert await lease.run(square, 3) == 9
            await lease.release()
            results = await asyncio.gather(*(grinder.submit(square, i) for i in range(40)))
            assert results == [i * i for i in range(40)]
        finally:
            await grinder.stop()
            await manager.stop()

    run(main(), timeout=DEADLINE * 3)


@needs_dask
def test_stop_leaves_a_given_client_open(dask_cluster: Cluster) -> None:
    async def main() -> None:
        manager = make(dask_cluster)
        await manager.start()
        async with await manager.acquire() as lease:
            assert await lease.run(square, 2) == 4
        await manager.stop()

    run(main(), timeout=DEADLINE * 2)
    assert dask_cluster.client.status == "running"
    assert dask_cluster.client.submit(square, 3, pure=False).result(timeout=DEADLINE) == 9


@needs_dask
def test_a_client_created_from_an_address_is_closed_at_stop(dask_cluster: Cluster) -> None:
    scheduler = dask_cluster.cluster.scheduler
    clients_before = set(scheduler.clients)

    async def main() -> None:
        manager = make(dask_cluster, dask_address=dask_cluster.address)
        await manager.start()
        try:
            assert manager.stats()["backend_details"]["owns_client"] is True
            assert len(set(scheduler.clients) - clients_before) == 1
            async with await manager.acquire() as lease:
                assert await lease.run(square, 4) == 16
        finally:
            await manager.stop()

    run(main(), timeout=DEADLINE * 2)
    wait_until(lambda: set(scheduler.clients) <= clients_before, timeout=DEADLINE)
    assert dask_cluster.client.status == "running"


@needs_dask
def test_pools_pinned_to_a_worker_run_only_there(dask_cluster: Cluster) -> None:
    import os

    dask_cluster.wait_for_workers(2)
    target = dask_cluster.worker_addresses()[0]
    pids = dask_cluster.client.run(os.getpid)

    async def main() -> set[int]:
        manager = make(dask_cluster, workers_per_pool=4, dask_workers=[target])
        await manager.start()
        try:
            async with await manager.acquire() as lease:
                futures = [lease.executor.submit(os.getpid) for _ in range(8)]
                return {f.result(timeout=DEADLINE) for f in futures}
        finally:
            await manager.stop()

    assert run(main(), timeout=DEADLINE * 2) == {pids[target]}


@needs_dask
def test_an_unreachable_address_fails_start_clearly() -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def main() -> None:
        import dask

        manager = LeasedExecutorManager(
            backend="dask", max_pools=1, dask_address=f"tcp://127.0.0.1:{port}"
        )
        with dask.config.set({"distributed.comm.timeouts.connect": "1s"}), pytest.raises(
            ConnectionError, match="could not connect to the Dask scheduler"
        ):
            await manager.start()
        assert not manager.started

    run(main(), timeout=DEADLINE)
