"""Backends: the built-in ones, registering custom ones, executor options,
and a process pool whose worker dies mid-lease."""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import sys
import threading
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import pytest

from neoleasepool import (
    ExecutorBackend,
    LeasedExecutorManager,
    PoolSpec,
    UnsupportedBackendError,
    WorkerDiedError,
    backend_availability,
    register_backend,
)
from neoleasepool.backends import get_backend
from tests.support import await_until, run, serving
from tests.workfns import crash, getpid, remember, remembered, sleep_then, square

HAS_INTERPRETERS = hasattr(concurrent.futures, "InterpreterPoolExecutor")


def test_executor_backend_enum_values() -> None:
    assert [b.value for b in ExecutorBackend] == ["thread", "process", "interpreter"]
    assert str(ExecutorBackend.PROCESS) == "process"
    assert ExecutorBackend("thread") is ExecutorBackend.THREAD
    assert ExecutorBackend.THREAD == "thread"


@pytest.mark.parametrize("backend", [ExecutorBackend.THREAD, ExecutorBackend.PROCESS])
def test_manager_accepts_the_enum(backend: ExecutorBackend) -> None:
    manager = LeasedExecutorManager(backend=backend, max_pools=1)
    assert manager.backend == backend.value


def test_backend_names_are_case_insensitive() -> None:
    assert LeasedExecutorManager(backend="Thread", max_pools=1).backend == "thread"
    with pytest.raises(UnsupportedBackendError):  # leasepool strips nothing either
        LeasedExecutorManager(backend=" thread", max_pools=1)


def test_default_backend_is_thread() -> None:
    assert LeasedExecutorManager(max_pools=1).backend == "thread"


def test_unknown_backend_is_rejected_naming_the_known_ones() -> None:
    leasepool_words = "Unsupported backend 'gpu'. Supported: thread, process, interpreter"
    with pytest.raises(UnsupportedBackendError, match=f"^{re.escape(leasepool_words)}") as info:
        LeasedExecutorManager(backend="gpu", max_pools=1)
    assert isinstance(info.value, ValueError)
    assert "thread" in str(info.value) and "process" in str(info.value)
    with pytest.raises(UnsupportedBackendError):
        LeasedExecutorManager(backend=3, max_pools=1)  # type: ignore[arg-type]


def test_backend_availability_lists_the_builtins() -> None:
    available = backend_availability()
    assert available["thread"] is None
    assert available["process"] is None
    assert "interpreter" in available


@pytest.mark.skipif(HAS_INTERPRETERS, reason="InterpreterPoolExecutor exists here")
def test_interpreter_backend_needs_python_314() -> None:
    with pytest.raises(UnsupportedBackendError, match=r"Python 3\.14") as info:
        LeasedExecutorManager(backend="interpreter", max_pools=1)
    version = ".".join(map(str, sys.version_info[:2]))
    assert version in str(info.value)
    assert "3.14" in (backend_availability()["interpreter"] or "")
    with pytest.raises(UnsupportedBackendError):
        LeasedExecutorManager(backend=ExecutorBackend.INTERPRETER, max_pools=1)


@pytest.mark.skipif(not HAS_INTERPRETERS, reason="needs Python 3.14")
def test_interpreter_backend_runs_work() -> None:
    async def main() -> None:
        manager = LeasedExecutorManager(
            backend="interpreter", max_pools=1, workers_per_pool=1
        )
        async with serving(manager), await manager.acquire() as lease:
            assert await lease.run(pow, 3, 4) == 81

    run(main())


# ----------------------------------------------------------- custom backends


class CountingPool(ThreadPoolExecutor):
    """A thread pool that remembers how it was built."""

    created: list[PoolSpec] = []  # noqa: RUF012

    def __init__(self, spec: PoolSpec) -> None:
        super().__init__(max_workers=spec.workers, thread_name_prefix=spec.name)
        self.spec = spec
        CountingPool.created.append(spec)


def test_registered_factory_backend_builds_the_pools() -> None:
    CountingPool.created.clear()
    register_backend("tests-counting", CountingPool, replace=True)

    async def main() -> None:
        manager = LeasedExecutorManager(
            backend="tests-counting",
            max_pools=2,
            min_pools=2,
            workers_per_pool=3,
            name_prefix="custom",
            flavour="mint",
        )
        assert manager.backend == "tests-counting"
        async with serving(manager), await manager.acquire() as lease:
            assert await lease.run(square, 8) == 64

    run(main())
    assert [s.index for s in CountingPool.created] == [1, 2]
    spec = CountingPool.created[0]
    assert spec.workers == 3
    assert spec.name == "custom-1"
    assert dict(spec.options) == {"flavour": "mint"}


def test_factory_returning_a_non_executor_fails_start_cleanly() -> None:
    register_backend("tests-bogus", lambda spec: object(), replace=True)

    async def main() -> None:
        manager = LeasedExecutorManager(backend="tests-bogus", max_pools=1)
        with pytest.raises(TypeError, match=r"concurrent\.futures\.Executor"):
            await manager.start()
        assert not manager.started
        assert manager.loop is None

    run(main())


def test_register_backend_refuses_duplicates_and_bad_input() -> None:
    def factory(spec: PoolSpec) -> Executor:
        return ThreadPoolExecutor(max_workers=spec.workers)

    register_backend("tests-dup", factory, replace=True)
    with pytest.raises(ValueError, match="already registered"):
        register_backend("tests-dup", factory)
    with pytest.raises(ValueError, match="already registered"):
        register_backend("thread", factory)
    assert get_backend("thread").name == "thread"
    with pytest.raises(ValueError, match="non-empty"):
        register_backend("  ", factory)
    with pytest.raises(ValueError, match="factory callable"):
        register_backend("tests-nope", 42)  # type: ignore[arg-type]


# ---------------------------------------------------------- executor options


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_unknown_executor_option_is_rejected_at_construction(backend: str) -> None:
    with pytest.raises(ValueError, match="bogus_option"):
        LeasedExecutorManager(backend=backend, max_pools=1, bogus_option=1)


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_max_workers_option_points_to_workers_per_pool(backend: str) -> None:
    with pytest.raises(ValueError, match="workers_per_pool"):
        LeasedExecutorManager(backend=backend, max_pools=1, max_workers=2)


def test_process_only_options_are_rejected_on_threads() -> None:
    with pytest.raises(ValueError, match="max_tasks_per_child"):
        LeasedExecutorManager(backend="thread", max_pools=1, max_tasks_per_child=3)


def test_thread_backend_passes_initializer_to_each_pool() -> None:
    seen: list[str] = []

    async def main() -> None:
        manager = LeasedExecutorManager(
            backend="thread",
            max_pools=2,
            min_pools=2,
            workers_per_pool=1,
            initializer=seen.append,
            initargs=("ready",),
        )
        async with serving(manager):
            for _ in range(2):
                lease = await manager.acquire()
                assert await lease.run(square, 1) == 1
            assert seen == ["ready", "ready"]

    run(main())


def test_process_backend_passes_initializer_and_uses_a_safe_start_method() -> None:
    async def main() -> None:
        manager = LeasedExecutorManager(
            backend="process",
            max_pools=1,
            workers_per_pool=1,
            initializer=remember,
            initargs=("configured",),
        )
        async with serving(manager):
            async with await manager.acquire() as lease:
                assert await lease.run(remembered) == "configured"
            details = manager.stats()["backend_details"]
            assert details["start_method"] in ("forkserver", "spawn")
            assert details["forwarding_logs"] is False

    run(main())


# ------------------------------------------------------------ crashed worker


def test_a_crashed_worker_of_our_pool_fails_only_its_call_and_the_pool_goes_on() -> None:
    async def main() -> None:
        manager = LeasedExecutorManager(
            backend="process", max_pools=2, min_pools=2, workers_per_pool=1
        )
        async with serving(manager):
            victim = await manager.acquire(owner="victim")
            bystander = await manager.acquire(owner="bystander")
            victim_pid = await victim.run(getpid)
            bystander_pid = await bystander.run(getpid)
            slow = asyncio.ensure_future(bystander.run(sleep_then, 0.5, "survived"))
            with pytest.raises(BrokenProcessPool) as caught:
                await victim.run(crash)
            assert isinstance(caught.value, WorkerDiedError)
            assert f"pid={victim_pid}" in str(caught.value)
            assert await slow == "survived"
            assert await bystander.run(getpid) == bystander_pid

            # The same lease keeps working: the same pool, a new worker.
            assert victim.active
            assert await victim.run(square, 11) == 121
            assert await victim.run(getpid) != victim_pid
            stats = manager.stats()
            assert stats["pools_broken"] == 0
            assert stats["pools_retired"] == 0
            assert stats["pools_created"] == 2
            await victim.release()
            await bystander.release()

    run(main())


def test_a_crashed_worker_breaks_a_stdlib_pool_which_is_replaced() -> None:
    async def main() -> None:
        manager = LeasedExecutorManager(
            backend="stdlib-process", max_pools=2, min_pools=2, workers_per_pool=1
        )
        async with serving(manager):
            victim = await manager.acquire(owner="victim")
            bystander = await manager.acquire(owner="bystander")
            victim_pid = await victim.run(getpid)
            bystander_pid = await bystander.run(getpid)
            slow = asyncio.ensure_future(bystander.run(sleep_then, 0.5, "survived"))
            with pytest.raises(BrokenProcessPool):
                await victim.run(crash)
            assert await slow == "survived"
            assert await bystander.run(getpid) == bystander_pid

            # The same lease keeps working, on a fresh pool.
            assert victim.active
            assert await victim.run(square, 11) == 121
            assert await victim.run(getpid) != victim_pid
            stats = manager.stats()
            assert stats["pools_broken"] == 1
            assert stats["pools_retired"] == 1
            assert stats["pools_created"] == 3
            assert manager.total_count == 2

            await victim.release()
            await bystander.release()
            # New leases get working pools, never the broken one.
            leases = [await manager.acquire() for _ in range(2)]
            results = await asyncio.gather(*(lease.run(square, 3) for lease in leases))
            assert results == [9, 9]
            for lease in leases:
                await lease.release()
            await await_until(lambda: manager.stats()["retiring"] == 0)

    run(main(), timeout=60)


@pytest.mark.parametrize(("backend", "broken"), [("process", 0), ("stdlib-process", 1)])
def test_crash_while_draining_still_returns_a_working_pool(backend: str, broken: int) -> None:
    async def main() -> None:
        manager = LeasedExecutorManager(backend=backend, max_pools=1, workers_per_pool=1)
        async with serving(manager):
            lease = await manager.acquire()
            await lease.run(getpid)
            future = lease.executor.submit(sleep_then, 0.3, None)
            crashing = lease.executor.submit(crash)
            await lease.release()
            outcomes = await asyncio.gather(
                asyncio.wrap_future(future), asyncio.wrap_future(crashing),
                return_exceptions=True,
            )
            assert isinstance(outcomes[1], BrokenProcessPool)
            async with await manager.acquire(timeout=30) as fresh:
                assert await fresh.run(square, 4) == 16
            assert manager.stats()["pools_broken"] == broken  # ours: a worker replaced
            assert manager.total_count == 1

    run(main(), timeout=60)



class HeldCallbacksFuture(Future[Any]):
    """A future whose done-callbacks wait for a gate, as when the thread that
    completes it is descheduled between waking ``result()`` waiters and
    running the callbacks."""

    def __init__(self, gate: threading.Event) -> None:
        super().__init__()
        self._gate = gate

    def _invoke_callbacks(self) -> None:
        self._gate.wait(30)
        super()._invoke_callbacks()


class BreakingExecutor(Executor):
    """Fails every call with ``BrokenExecutor`` once ``go`` is set."""

    instances: list[BreakingExecutor] = []  # noqa: RUF012

    def __init__(self, spec: PoolSpec) -> None:
        self.go = threading.Event()
        self.callbacks = threading.Event()
        self.threads: list[threading.Thread] = []
        self.shut_down = False
        BreakingExecutor.instances.append(self)

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        future = HeldCallbacksFuture(self.callbacks)

        def fail() -> None:
            self.go.wait(30)
            future.set_exception(concurrent.futures.BrokenExecutor("pool broke"))

        thread = threading.Thread(target=fail)
        self.threads.append(thread)
        thread.start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.shut_down = True
        self.go.set()
        self.callbacks.set()
        for thread in self.threads:
            thread.join()


def test_pool_that_breaks_after_its_lease_ended_is_never_lent_again() -> None:
    BreakingExecutor.instances.clear()
    register_backend("tests-breaking", BreakingExecutor, replace=True)

    async def main() -> None:
        manager = LeasedExecutorManager(backend="tests-breaking", max_pools=1)
        async with serving(manager):
            try:
                (first,) = BreakingExecutor.instances
                lease = await manager.acquire()
                future = lease.executor.submit(square, 2)
                first.go.set()
                # The holder sees the failure before the manager's callback runs...
                assert isinstance(
                    await asyncio.to_thread(future.exception, 10),
                    concurrent.futures.BrokenExecutor,
                )
                await lease.release()  # ...and returns the pool, which looks idle.
                assert manager.available_count == 1
                first.callbacks.set()
                await await_until(lambda: len(BreakingExecutor.instances) == 2)
                await await_until(lambda: first.shut_down)
                assert manager.stats()["pools_broken"] == 1
                assert manager.total_count == 1
                nxt = await manager.acquire(wait=False)
                second = BreakingExecutor.instances[1]
                nxt.executor.submit(square, 3)
                assert len(second.threads) == 1 and first.threads[1:] == []
                await nxt.release()
            finally:
                for executor in BreakingExecutor.instances:
                    executor.go.set()
                    executor.callbacks.set()

    run(main())


def test_pool_that_breaks_on_its_way_to_a_waiter_is_not_lent() -> None:
    BreakingExecutor.instances.clear()
    register_backend("tests-breaking", BreakingExecutor, replace=True)

    async def main() -> None:
        manager = LeasedExecutorManager(backend="tests-breaking", max_pools=1)
        async with serving(manager):
            try:
                (first,) = BreakingExecutor.instances
                lease = await manager.acquire()
                future = lease.executor.submit(square, 2)
                first.go.set()
                await asyncio.to_thread(future.exception, 10)
                waiting = asyncio.ensure_future(manager.acquire())
                await await_until(lambda: manager.stats()["waiting"] == 1)
                await lease.release()  # the pool is handed to the waiter
                # The callbacks run (on another thread) before the waiter resumes:
                # block the loop until they are done.
                first.callbacks.set()
                first.threads[0].join(10)
                assert not first.threads[0].is_alive()
                nxt = await asyncio.wait_for(waiting, 10)
                await await_until(lambda: first.shut_down)
                assert len(BreakingExecutor.instances) == 2
                nxt.executor.submit(square, 3)
                assert len(BreakingExecutor.instances[1].threads) == 1
                assert len(first.threads) == 1
                await nxt.release()
            finally:
                for executor in BreakingExecutor.instances:
                    executor.go.set()
                    executor.callbacks.set()

    run(main())
