"""leasepool 0.1.3 code keeps working: its error wording, values and helpers.

``doc/migration.md`` has a table of every situation in which leasepool
raises, with leasepool's exception and message and ours.  This module reads
that table and, for each row, brings the situation about and checks that
our exception is of leasepool's class (what its users catch), that our
message opens with leasepool's words (what their ``match=`` patterns and
log filters look for), and that it is the message the table shows.  A row
without a trigger here, or a trigger without a row, fails too, so the
table and the code cannot drift apart.
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import json
import math
import multiprocessing
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import neoleasepool
from neoleasepool import (
    ExecutorBackend,
    LeasedExecutorManager,
    ProcessLoggingConfig,
    TaskSupervisor,
    UnsupportedBackendError,
    WorkGrinder,
)
from neoleasepool.backends import build_executor, normalize_backend, resolve_executor_cls

from .support import await_until, error_in_other_loop, run

MIGRATION = Path(__file__).resolve().parent.parent / "doc" / "migration.md"
_ROW = re.compile(r"^\| `(?P<case>[^`]+)` \| (?P<theirs>.+?) \| (?P<ours>.+?) \|$")
_CELL = re.compile(r"^`(?P<cls>\w+)`: ``(?P<message>.+)``$")


def _table() -> list[tuple[str, str, str, str, str]]:
    """The rows of the error-message table: (case, their class, their
    message, our class, our message)."""
    text = MIGRATION.read_text(encoding="utf-8")
    section = text.split("### Error messages", 1)[1].split("\n#", 1)[0]
    rows = []
    for line in section.splitlines():
        found = _ROW.match(line)
        if found is None:
            continue
        theirs = _CELL.match(found["theirs"])
        ours = _CELL.match(found["ours"])
        assert theirs and ours, f"malformed row in doc/migration.md: {line}"
        rows.append(
            (found["case"], theirs["cls"], theirs["message"], ours["cls"], ours["message"])
        )
    return rows


ROWS = _table()


def _catch(call: Callable[[], Any]) -> BaseException:
    try:
        call()
    except Exception as exc:
        return exc
    raise AssertionError("nothing was raised")


async def _acatch(call: Callable[[], Awaitable[Any]]) -> BaseException:
    try:
        await call()
    except Exception as exc:
        return exc
    raise AssertionError("nothing was raised")


def _in_other_loop(call: Callable[[], Awaitable[Any]]) -> Awaitable[BaseException | None]:
    async def attempt() -> None:
        await call()

    return asyncio.to_thread(error_in_other_loop, attempt)


def _block(seconds: float) -> bool:
    event = threading.Event()
    event.wait(seconds)
    return True


# ------------------------------------------------------------- triggers


def _manager(**kwargs: Any) -> Callable[[], BaseException]:
    return lambda: _catch(lambda: LeasedExecutorManager(**kwargs))


def _grinder(**kwargs: Any) -> Callable[[], BaseException]:
    manager = LeasedExecutorManager(max_pools=1)
    return lambda: _catch(lambda: WorkGrinder(executor_manager=manager, **kwargs))


async def _acquire_before_start() -> BaseException:
    return await _acatch(LeasedExecutorManager(max_pools=1).acquire)


async def _on_running_manager(
    body: Callable[[LeasedExecutorManager], Awaitable[BaseException | None]], **kwargs: Any
) -> BaseException | None:
    manager = LeasedExecutorManager(max_pools=1, **kwargs)
    await manager.start()
    try:
        return await body(manager)
    finally:
        await manager.stop()


async def _acquire_other_loop(manager: LeasedExecutorManager) -> BaseException | None:
    return await _in_other_loop(manager.acquire)


async def _start_other_loop(manager: LeasedExecutorManager) -> BaseException | None:
    return await _in_other_loop(manager.start)


async def _all_leased(manager: LeasedExecutorManager) -> BaseException:
    async with await manager.acquire():
        return await _acatch(lambda: manager.acquire(wait=False))


async def _timed_out(manager: LeasedExecutorManager) -> BaseException:
    async with await manager.acquire():
        return await _acatch(lambda: manager.acquire(timeout=0.05))


async def _proxy_shutdown(manager: LeasedExecutorManager) -> BaseException:
    async with await manager.acquire() as lease:
        return _catch(lease.executor.shutdown)


async def _after_release(manager: LeasedExecutorManager) -> BaseException:
    lease = await manager.acquire()
    await lease.release()
    return _catch(lambda: lease.executor.submit(int))


async def _past_hard_expiry(manager: LeasedExecutorManager) -> BaseException:
    lease = await manager.acquire(lease_seconds=0.01)
    # Block the loop past the hard expiry (grace 0), so the reaper, which
    # runs on this loop, cannot revoke the lease first: the submit meets it.
    deadline = lease.hard_expires_at
    while time.monotonic() < deadline:
        _block(deadline - time.monotonic())
    try:
        return _catch(lambda: lease.executor.submit(int))
    finally:
        await lease.release()


async def _on_grinder(
    body: Callable[[WorkGrinder], Awaitable[BaseException | None]],
) -> BaseException | None:
    manager = LeasedExecutorManager(max_pools=1)
    await manager.start()
    grinder = WorkGrinder(executor_manager=manager, max_wait_seconds=0.01)
    await grinder.start()
    try:
        return await body(grinder)
    finally:
        await grinder.stop()
        await manager.stop()


async def _grinder_before_start() -> BaseException:
    grinder = WorkGrinder(executor_manager=LeasedExecutorManager(max_pools=1))
    return await _acatch(lambda: grinder.submit(int))


async def _grinder_submit_other_loop(grinder: WorkGrinder) -> BaseException | None:
    return await _in_other_loop(lambda: grinder.submit(int))


async def _grinder_start_other_loop(grinder: WorkGrinder) -> BaseException | None:
    return await _in_other_loop(grinder.start)


async def _grinder_thread_api_on_loop(grinder: WorkGrinder) -> BaseException:
    return _catch(lambda: grinder.submit_from_thread(int))


async def _grinder_stats_on_loop(grinder: WorkGrinder) -> BaseException:
    return _catch(grinder.stats_from_thread)


async def _grinder_stopping(grinder: WorkGrinder) -> BaseException:
    release = threading.Event()
    running = await grinder.enqueue(release.wait, 30)
    await await_until(lambda: grinder.stats()["running"] >= 1)
    stopping = asyncio.ensure_future(grinder.stop())
    await await_until(lambda: grinder.stats()["stopping"])
    try:
        return await _acatch(lambda: grinder.submit(int))
    finally:
        release.set()
        await stopping
        assert await running is True


TRIGGERS: dict[str, Callable[[], Any]] = {
    "LeasedExecutorManager(max_pools=0)": _manager(max_pools=0),
    "LeasedExecutorManager(max_pools=1, min_pools=0)": _manager(max_pools=1, min_pools=0),
    "LeasedExecutorManager(max_pools=1, units_per_pool=0)":
        _manager(max_pools=1, units_per_pool=0),
    "LeasedExecutorManager(max_pools=1, workers_per_pool=-1)":
        _manager(max_pools=1, workers_per_pool=-1),
    "LeasedExecutorManager(max_pools=1.5)": _manager(max_pools=1.5),
    "LeasedExecutorManager(max_pools=True)": _manager(max_pools=True),
    "LeasedExecutorManager(max_pools=1, min_pools=2)": _manager(max_pools=1, min_pools=2),
    "LeasedExecutorManager(max_pools=1, check_interval=0)":
        _manager(max_pools=1, check_interval=0),
    "LeasedExecutorManager(max_pools=1, check_interval=math.nan)":
        _manager(max_pools=1, check_interval=math.nan),
    "LeasedExecutorManager(max_pools=1, default_lease_seconds='soon')":
        _manager(max_pools=1, default_lease_seconds="soon"),
    "LeasedExecutorManager(max_pools=1, lease_grace_seconds=-1)":
        _manager(max_pools=1, lease_grace_seconds=-1),
    "LeasedExecutorManager(max_pools=1, lease_grace_seconds=math.inf)":
        _manager(max_pools=1, lease_grace_seconds=math.inf),
    "LeasedExecutorManager(max_pools=1, backend='gpu')": _manager(max_pools=1, backend="gpu"),
    "LeasedExecutorManager(max_pools=1, backend='interpreter')":
        _manager(max_pools=1, backend="interpreter"),
    "LeasedExecutorManager(max_pools=1, backend='thread', forward_process_logs=True)":
        _manager(max_pools=1, backend="thread", forward_process_logs=True),
    "LeasedExecutorManager(max_pools=1, backend='process', "
    "process_logging=ProcessLoggingConfig(), forward_process_logs=True)":
        _manager(max_pools=1, backend="process", process_logging=ProcessLoggingConfig(),
                 forward_process_logs=True),
    "LeasedExecutorManager(max_pools=1, backend='process', forward_process_logs=True, "
    "process_log_level='LOUD')":
        _manager(max_pools=1, backend="process", forward_process_logs=True,
                 process_log_level="LOUD"),
    "WorkGrinder(batch_size_threshold=0)": _grinder(batch_size_threshold=0),
    "WorkGrinder(batch_size_threshold=2.5)": _grinder(batch_size_threshold=2.5),
    "WorkGrinder(max_wait_seconds=math.nan)": _grinder(max_wait_seconds=math.nan),
    "WorkGrinder(lease_seconds=0)": _grinder(lease_seconds=0),
    "await manager.acquire()  # before start()": lambda: run(_acquire_before_start()),
    "await manager.acquire()  # on another loop":
        lambda: run(_on_running_manager(_acquire_other_loop)),
    "await manager.start()  # on another loop, once started":
        lambda: run(_on_running_manager(_start_other_loop)),
    "await manager.acquire(wait=False)  # max_pools=1, leased":
        lambda: run(_on_running_manager(_all_leased)),
    "await manager.acquire(timeout=0.05)  # max_pools=1, leased":
        lambda: run(_on_running_manager(_timed_out)),
    "lease.executor.shutdown()": lambda: run(_on_running_manager(_proxy_shutdown)),
    "lease.executor.submit(...)  # after release()":
        lambda: run(_on_running_manager(_after_release)),
    "lease.executor.submit(...)  # past the hard expiry":
        lambda: run(_on_running_manager(_past_hard_expiry, lease_grace_seconds=0)),
    "await grinder.submit(...)  # before start()": lambda: run(_grinder_before_start()),
    "await grinder.submit(...)  # on another loop":
        lambda: run(_on_grinder(_grinder_submit_other_loop)),
    "await grinder.start()  # on another loop, once started":
        lambda: run(_on_grinder(_grinder_start_other_loop)),
    "grinder.submit_from_thread(...)  # on its loop's thread":
        lambda: run(_on_grinder(_grinder_thread_api_on_loop)),
    "grinder.stats_from_thread()  # on its loop's thread":
        lambda: run(_on_grinder(_grinder_stats_on_loop)),
    "await grinder.submit(...)  # while stop() drains": lambda: run(_on_grinder(_grinder_stopping)),
}


def _leasepool_class(name: str) -> type[BaseException]:
    found = getattr(builtins, name, None) or getattr(neoleasepool, name)
    assert isinstance(found, type) and issubclass(found, BaseException)
    return found


def _pattern(message: str) -> str:
    """The table's message as a regex: ``…`` stands for text that varies
    (the Python version, backends registered by other tests)."""
    return ".*".join(re.escape(part) for part in message.split("…"))


def test_every_row_of_the_table_has_a_trigger_and_every_trigger_a_row() -> None:
    cases = [row[0] for row in ROWS]
    assert len(cases) == len(set(cases)), "a case appears twice in the table"
    assert sorted(cases) == sorted(TRIGGERS)


@pytest.mark.parametrize(
    ("case", "their_class", "their_message", "our_class", "our_message"),
    ROWS,
    ids=[row[0] for row in ROWS],
)
def test_message_opens_with_leasepools_words(
    case: str, their_class: str, their_message: str, our_class: str, our_message: str
) -> None:
    if "interpreter" in case and sys.version_info >= (3, 14):
        pytest.skip("Python 3.14 has InterpreterPoolExecutor")
    error = TRIGGERS[case]()
    assert isinstance(error, _leasepool_class(their_class)), repr(error)
    assert type(error).__name__ == our_class
    assert str(error).startswith(their_message), str(error)
    assert re.fullmatch(_pattern(our_message), str(error)), str(error)
    assert our_message.startswith(their_message)


def test_interpreter_backend_before_314_is_refused_in_leasepools_words() -> None:
    if sys.version_info >= (3, 14):
        pytest.skip("Python 3.14 has InterpreterPoolExecutor")
    words = "InterpreterPoolExecutor is available only on Python 3.14+."
    with pytest.raises(UnsupportedBackendError, match=f"^{re.escape(words)}"):
        LeasedExecutorManager(max_pools=1, backend="interpreter")
    with pytest.raises(UnsupportedBackendError, match=f"^{re.escape(words)}"):
        resolve_executor_cls("interpreter")


# ----------------------------------------------------------------- values


def test_backend_is_an_executor_backend_member_equal_to_its_name() -> None:
    manager = LeasedExecutorManager(max_pools=1, backend="PROCESS")
    assert manager.backend is ExecutorBackend.PROCESS
    assert manager.backend == "process"
    assert f"{manager.backend}" == "process"
    assert json.dumps({"backend": manager.backend}) == '{"backend": "process"}'
    assert LeasedExecutorManager(max_pools=1).backend is ExecutorBackend.THREAD


def test_supervised_facade_backend_is_the_member_and_stats_stay_json() -> None:
    supervisor = TaskSupervisor()
    supervisor.start()
    try:
        facade = supervisor.create_lease_manager("compat-backend", max_pools=1)
        assert facade.backend is ExecutorBackend.THREAD
        stats = facade.stats()
        assert json.loads(json.dumps(stats))["backend"] == "thread"
    finally:
        supervisor.stop(wait=30)


@pytest.mark.parametrize(
    ("value", "seconds"), [("2.5", 2.5), (" 7 ", 7.0), (Decimal("0.5"), 0.5), (3, 3.0)],
    ids=repr,
)
def test_durations_are_read_as_leasepool_reads_them(value: Any, seconds: float) -> None:
    manager = LeasedExecutorManager(
        max_pools=1, check_interval=value, default_lease_seconds=value,
        lease_grace_seconds=value,
    )
    assert manager._options.check_interval == seconds
    assert manager._options.default_lease_seconds == seconds
    assert manager._options.grace_seconds == seconds
    grinder = WorkGrinder(executor_manager=manager, max_wait_seconds=value, lease_seconds=value)
    assert grinder.stats()["max_wait_seconds"] == seconds
    assert grinder.stats()["lease_seconds"] == seconds


def test_lease_seconds_at_acquire_is_read_as_leasepool_reads_it() -> None:
    async def main() -> float:
        manager = LeasedExecutorManager(max_pools=1)
        await manager.start()
        try:
            async with await manager.acquire(lease_seconds="12.5") as lease:
                return float(lease.lease_seconds)
        finally:
            await manager.stop()

    assert run(main()) == 12.5


@pytest.mark.parametrize("value", [2.0, "2", Decimal(2), True], ids=repr)
def test_counts_are_true_integers_as_in_leasepool(value: Any) -> None:
    with pytest.raises(ValueError, match=r"^max_pools must be an integer > 0: "):
        LeasedExecutorManager(max_pools=value)
    with pytest.raises(ValueError, match=r"^batch_size_threshold must be an integer > 0: "):
        WorkGrinder(executor_manager=LeasedExecutorManager(max_pools=1),
                    batch_size_threshold=value)


def test_arguments_are_checked_in_leasepools_order() -> None:
    # leasepool checks the counts, then the durations, then min_pools
    # against max_pools, then the backend: the first of these is reported.
    with pytest.raises(ValueError, match=r"^workers_per_pool must be > 0"):
        LeasedExecutorManager(max_pools=1, min_pools=2, workers_per_pool=0, backend="gpu")
    with pytest.raises(ValueError, match=r"^check_interval must be > 0"):
        LeasedExecutorManager(max_pools=1, min_pools=2, check_interval=0, backend="gpu")
    with pytest.raises(ValueError, match=r"^min_pools cannot be greater"):
        LeasedExecutorManager(max_pools=1, min_pools=2, backend="gpu")


# ---------------------------------------------------- neoleasepool.backends


def test_normalize_backend_returns_members_and_refuses_unknown_names() -> None:
    assert normalize_backend(ExecutorBackend.THREAD) is ExecutorBackend.THREAD
    assert normalize_backend("Process") is ExecutorBackend.PROCESS
    assert normalize_backend("INTERPRETER") is ExecutorBackend.INTERPRETER
    words = "Unsupported backend 'gpu'. Supported: thread, process, interpreter"
    with pytest.raises(ValueError, match=f"^{re.escape(words)}") as info:
        normalize_backend("gpu")
    assert isinstance(info.value, UnsupportedBackendError)


def test_resolve_executor_cls_names_the_concurrent_futures_class() -> None:
    assert resolve_executor_cls("thread") is ThreadPoolExecutor
    assert resolve_executor_cls(ExecutorBackend.PROCESS) is ProcessPoolExecutor
    if sys.version_info >= (3, 14):
        interpreter = concurrent.futures.InterpreterPoolExecutor  # type: ignore[attr-defined]
        assert resolve_executor_cls("interpreter") is interpreter
    with pytest.raises(UnsupportedBackendError, match=r"^Unsupported backend"):
        resolve_executor_cls("gpu")


def test_build_executor_names_thread_pools_and_passes_options() -> None:
    started: list[str] = []
    executor = build_executor(
        backend="thread", max_workers=1, name_prefix="compat", executor_seq=7,
        executor_kwargs={"initializer": lambda: started.append("yes")},
    )
    try:
        assert isinstance(executor, ThreadPoolExecutor)
        name = executor.submit(lambda: threading.current_thread().name).result(timeout=10)
        assert name.startswith("compat-7")
        assert started == ["yes"]
    finally:
        executor.shutdown(wait=True)
    named = build_executor(
        backend="thread", max_workers=1, name_prefix="ignored", executor_seq=1,
        executor_kwargs={"thread_name_prefix": "mine"},
    )
    try:
        name = named.submit(lambda: threading.current_thread().name).result(timeout=10)
        assert name.startswith("mine")
    finally:
        named.shutdown(wait=True)


def test_build_executor_builds_a_process_pool_without_a_thread_name_prefix() -> None:
    executor = build_executor(
        backend=ExecutorBackend.PROCESS, max_workers=1, name_prefix="p", executor_seq=1,
        executor_kwargs={"mp_context": multiprocessing.get_context("spawn")},
    )
    try:
        assert isinstance(executor, ProcessPoolExecutor)
        assert executor.submit(math.factorial, 5).result(timeout=60) == 120
    finally:
        executor.shutdown(wait=True)


# ---------------------------------------------------------------- example

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "51_from_leasepool.py"


def test_leasepool_example_names_neoleasepool_only_in_its_imports() -> None:
    code = EXAMPLE.read_text(encoding="utf-8").split('"""', 2)[2].splitlines()
    naming = [line for line in code if "neoleasepool" in line]
    assert naming == [
        "from neoleasepool import (", "from neoleasepool.backends import normalize_backend"
    ]


def _run_example(source: str, directory: Path) -> str:
    script = directory / "example.py"
    script.write_text(source, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False,
        cwd=directory, env={**os.environ, "PYTHONPATH": str(EXAMPLE.parent.parent)},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_leasepool_example_prints_the_same_on_leasepool(tmp_path: Path) -> None:
    pytest.importorskip("leasepool", reason="leasepool 0.1.3 is not installed")
    source = EXAMPLE.read_text(encoding="utf-8")
    ours = _run_example(source, tmp_path)
    theirs = _run_example(source.replace("from neoleasepool", "from leasepool"), tmp_path)
    assert ours == theirs
