"""Hygiene: user data never reaches the logs; a lease's executor proxy
cannot reach, shut down, or outlive its pool; the start method is not fork.

Limits, stated honestly: Python cannot hide an object from code running in
the same interpreter (``gc.get_referents``, module globals, ``ctypes``).
The attribute walk below covers what a careless or curious caller would
follow: instance ``__dict__`` and slots, closures, bound ``__self__`` and
``functools.partial`` parts.  Lease ids are labels, not secrets: the only
id-based operation is ``manager.release(lease_id)``.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import multiprocessing
import types

import pytest

from neoleasepool import LeasedExecutorManager, LeaseExpiredError, TaskSupervisor
from neoleasepool.backends.process_logging import safe_mp_context

from .chaos_work import SECRET, echo, fail_with
from .figures import report
from .support import run


def _reachable(root: object, limit: int = 5000) -> list[object]:
    """Objects reachable from ``root`` by instance attributes."""
    seen: dict[int, object] = {}
    stack = [root]
    while stack and len(seen) < limit:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (type, types.ModuleType, str, bytes, int, float)):
            continue
        seen[id(obj)] = obj
        children: list[object] = []
        children += list(getattr(obj, "__dict__", {}).values())
        for cls in type(obj).__mro__:
            for slot in getattr(cls, "__slots__", ()):
                if isinstance(slot, str) and hasattr(obj, slot):
                    children.append(getattr(obj, slot))
        if isinstance(obj, types.MethodType):
            children += [obj.__self__, obj.__func__]
        if isinstance(obj, types.FunctionType):
            children += [c.cell_contents for c in (obj.__closure__ or ()) if c.cell_contents]
        if isinstance(obj, functools.partial):
            children += [obj.func, *obj.args, *obj.keywords.values()]
        if isinstance(obj, (list, tuple, set, frozenset)):
            children += list(obj)
        if isinstance(obj, dict):
            children += list(obj.keys()) + list(obj.values())
        stack.extend(children)
    return list(seen.values())


def test_lease_and_proxy_reach_no_raw_executor_and_die_at_release(
    request: pytest.FixtureRequest,
) -> None:
    async def scenario() -> int:
        manager = LeasedExecutorManager(max_pools=1, workers_per_pool=1)
        await manager.start()
        lease = await manager.acquire(owner="me")
        walked = 0
        for root in (lease, lease.executor):
            for obj in _reachable(root):
                walked += 1
                assert not isinstance(obj, concurrent.futures.ThreadPoolExecutor), obj
                assert obj is not manager, f"{root!r} reaches the manager"
                assert obj is not manager._leases
        with pytest.raises(RuntimeError, match=r"^Do not shut down a leased executor directly\."):
            lease.executor.shutdown()
        assert await lease.run(echo, 1) == 1
        await lease.release()
        with pytest.raises(LeaseExpiredError):
            lease.executor.submit(echo, 2)
        with pytest.raises(LeaseExpiredError):
            await lease.run(echo, 3)
        await manager.stop()
        return walked

    walked = run(scenario())
    report(request.config, "security[proxy]", objects_walked=walked, invariants_held=4)


def test_release_by_id_is_the_only_id_based_operation() -> None:
    async def scenario() -> None:
        manager = LeasedExecutorManager(max_pools=2, workers_per_pool=1)
        await manager.start()
        mine = await manager.acquire(owner="mine")
        theirs = await manager.acquire(owner="theirs")
        # No public way to submit by id: only the lease object submits.
        public = [n for n in dir(manager) if not n.startswith("_")]
        assert not [n for n in public if "submit" in n or n == "run"]
        await manager.release(theirs.lease_id)  # documented: ids are not secrets
        assert not theirs.active and mine.active
        with pytest.raises(LeaseExpiredError):
            theirs.executor.submit(echo, 1)
        await mine.release()
        await manager.stop()

    run(scenario())


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_no_log_line_holds_user_arguments_or_results(
    backend: str, caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest
) -> None:
    sup = TaskSupervisor(id=f"sec-{backend}")
    sup.start()
    with caplog.at_level(logging.DEBUG):
        try:
            pool = sup.create_lease_manager(
                "cpu", backend=backend, max_pools=1, workers_per_pool=1,
                default_lease_seconds=30,
            )
            grinder = sup.create_work_grinder("g", pool, batch_size_threshold=2,
                                              max_wait_seconds=0.01)
            assert pool.run(echo, SECRET, timeout=60) == SECRET
            with pool.lease(owner="job") as lease:
                assert lease.run(echo, SECRET, timeout=60) == SECRET
                with pytest.raises(ValueError):
                    lease.run(fail_with, SECRET, timeout=60)
            assert grinder.submit(echo, SECRET, timeout=60) == SECRET
            with pytest.raises(ValueError):
                grinder.submit(fail_with, SECRET, timeout=60)
            futures = [grinder.enqueue(echo, SECRET) for _ in range(5)]
            futures[-1].cancel()
            concurrent.futures.wait(futures, timeout=60)
        finally:
            sup.stop(wait=30)
    lines = [r.getMessage() + (r.exc_text or "") for r in caplog.records]
    assert len(lines) > 5, "DEBUG logging was not captured"
    leaked = [line for line in lines if SECRET in line]
    assert leaked == []
    report(request.config, f"security[logs-{backend}]", log_lines=len(lines), leaks=0)


def test_process_pools_never_start_with_fork() -> None:
    assert safe_mp_context().get_start_method() != "fork"

    async def scenario() -> str:
        manager = LeasedExecutorManager(backend="process", max_pools=1, workers_per_pool=1)
        await manager.start()
        method = manager.stats()["backend_details"]["start_method"]
        await manager.stop()
        return str(method)

    method = run(scenario())
    assert method != "fork"
    assert method in multiprocessing.get_all_start_methods()
