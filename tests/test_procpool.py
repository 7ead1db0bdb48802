"""WorkerPool: our process pool, where one call can time out, be cancelled
while it runs, or die with its worker, and only that call fails.

Workers start with ``forkserver`` (the default) and run the functions of
``tests/procpool_work.py``; they report what they did through files. A
worker start costs a fresh interpreter and the package's imports (about a
fifth of a second here), so pools are small and faults few.
"""

from __future__ import annotations

import concurrent.futures
import functools
import gc
import json
import math
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import pytest

from neoleasepool import ItemTimeoutError, SoftTimeLimitExceeded, WorkerDiedError
from neoleasepool.backends.procpool import WorkerPool
from neoleasepool.backends.procpool.manager import STARTUP_KILLS_TOLERATED
from neoleasepool.backends.procpool.protocol import RemoteTraceback

from . import procpool_work as work
from .support import outcome, wait_until

#: Bound on any one wait for a worker (generous: a loaded 2-core machine).
WAIT = 30.0
MiB = 1 << 20


@pytest.fixture
def make_pool() -> Iterator[Callable[..., WorkerPool]]:
    """Build pools that are stopped after the test however it ends (busy
    workers killed first, so a hanging call cannot hold the teardown)."""
    pools: list[WorkerPool] = []

    def make(max_workers: int = 1, **kwargs: Any) -> WorkerPool:
        pool = WorkerPool(max_workers, **kwargs)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.kill_workers()
        pool.shutdown(wait=True, cancel_futures=True)


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not reaped yet, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def read_pid(path: Path) -> int:
    wait_until(path.exists, timeout=WAIT)
    return int(path.read_text())


def started(future: concurrent.futures.Future[Any]) -> bool:
    """Whether a worker took the call (or it already ended)."""
    return future.running() or future.done()


def own_children() -> set[int]:
    from .resources import mp_children

    return mp_children()


# ------------------------------------------------------------ plain calls


def test_submit_and_map_return_results_and_raise_the_calls_exceptions(
    make_pool: Callable[..., WorkerPool],
) -> None:
    pool = make_pool(2)
    assert pool.submit(work.square, 7).result(WAIT) == 49
    assert list(pool.map(work.square, range(10), timeout=WAIT)) == [i * i for i in range(10)]
    with pytest.raises(ValueError, match="boom") as info:
        pool.submit(work.fail, "boom").result(WAIT)
    assert isinstance(info.value.__cause__, RemoteTraceback)
    assert "in fail" in str(info.value.__cause__)
    with pytest.raises(ValueError, match="in map"):
        list(pool.map(work.fail, ["in map"], timeout=WAIT))
    # SystemExit is the call's outcome, not the end of its worker.
    pid = pool.submit(work.getpid).result(WAIT)
    with pytest.raises(SystemExit):
        pool.submit(work.raise_system_exit).result(WAIT)
    assert pid in {pool.submit(work.getpid).result(WAIT) for _ in range(4)}
    assert pool.stats()["restarts"]["died"] == 0


def test_an_argument_that_cannot_be_pickled_fails_its_future_at_once(
    make_pool: Callable[..., WorkerPool],
) -> None:
    pool = make_pool(1)
    future = pool.submit(work.square, threading.Lock())  # type: ignore[arg-type]
    assert future.done()
    assert isinstance(future.exception(), TypeError)
    assert pool.submit(lambda: 1).exception() is not None
    assert pool.submit(work.square, 4).result(WAIT) == 16


def test_an_outcome_that_cannot_travel_fails_its_call_and_the_worker_goes_on(
    make_pool: Callable[..., WorkerPool],
) -> None:
    pool = make_pool(1)
    pid = pool.submit(work.getpid).result(WAIT)
    with pytest.raises(TypeError, match="outcome could not be pickled"):
        pool.submit(work.unpicklable_result).result(WAIT)
    with pytest.raises(TypeError, match=r"outcome of raise_unloadable\(\) could not be unpickled"):
        pool.submit(work.raise_unloadable).result(WAIT)
    assert pool.submit(work.getpid).result(WAIT) == pid
    assert pool.stats()["calls_done"] == 4


# ------------------------------------------------------------ crashes


def test_a_worker_that_exits_inside_a_call_fails_only_that_call(
    make_pool: Callable[..., WorkerPool],
) -> None:
    pool = make_pool(1)
    pid = pool.submit(work.getpid).result(WAIT)
    crash = pool.submit(work.exit_now, 3)
    queued = [pool.submit(work.square, i) for i in range(5)]
    error = crash.exception(WAIT)
    assert isinstance(error, WorkerDiedError)
    assert isinstance(error, BrokenProcessPool)
    assert str(error) == (
        f"worker process pid={pid} died (exit code 3) while running exit_now(); it was replaced"
    )
    assert [f.result(WAIT) for f in queued] == [i * i for i in range(5)]
    assert pool.submit(work.getpid).result(WAIT) != pid
    assert not pool.broken
    assert pool.stats()["restarts"]["died"] == 1


def test_sigkill_of_a_busy_worker_from_outside_fails_only_its_call(
    make_pool: Callable[..., WorkerPool], tmp_path: Path
) -> None:
    pool = make_pool(2)
    victim = pool.submit(work.hang, str(tmp_path / "pid"))
    pid = read_pid(tmp_path / "pid")
    assert pool.submit(work.square, 5).result(WAIT) == 25  # on the other worker
    os.kill(pid, signal.SIGKILL)
    error = victim.exception(WAIT)
    assert isinstance(error, WorkerDiedError)
    assert f"pid={pid} died (exit code -9) while running hang()" in str(error)
    assert [pool.submit(work.square, i).result(WAIT) for i in range(4)] == [0, 1, 4, 9]
    assert pool.stats()["restarts"]["died"] == 1


def test_a_worker_killed_as_it_takes_a_call_still_ends_that_call(
    make_pool: Callable[..., WorkerPool],
) -> None:
    # pebble issue 153: the call's first statement kills its worker.
    pool = make_pool(1)
    futures = [pool.submit(work.kill_self) for _ in range(3)]
    assert pool.submit(work.square, 2).result(WAIT) == 4
    for future in futures:
        assert isinstance(future.exception(WAIT), WorkerDiedError)
    assert pool.stats()["restarts"]["died"] == 3


def test_workers_killed_from_outside_the_moment_they_run_a_call_end_every_call(
    make_pool: Callable[..., WorkerPool], tmp_path: Path
) -> None:
    pool = make_pool(2)
    paths = [tmp_path / f"pid-{i}" for i in range(12)]
    stop = threading.Event()
    killed: list[int] = []

    def killer() -> None:  # kills each worker as soon as its call has its pid written
        waiting = list(paths)
        while waiting and not stop.is_set():
            for path in [p for p in waiting if p.exists()]:
                pid = int(path.read_text())
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                except ProcessLookupError:
                    pass
                waiting.remove(path)
            stop.wait(0.001)

    thread = threading.Thread(target=killer, name="killer")
    thread.start()
    try:
        futures = [pool.submit(work.pid_then_sleep, str(path), 0.0) for path in paths]
        _, not_done = concurrent.futures.wait(futures, timeout=60)
    finally:
        stop.set()
        thread.join()
    assert not not_done
    for future in futures:
        error = future.exception()
        assert error is None or isinstance(error, WorkerDiedError), error
    failed = sum(f.exception() is not None for f in futures)
    assert killed and failed <= len(set(killed))
    # A worker killed after its call ended (idle) is replaced all the same.
    wait_until(lambda: pool.stats()["restarts"]["died"] == len(set(killed)), timeout=WAIT)
    assert pool.submit(work.square, 3).result(WAIT) == 9


# ------------------------------------------------------------ time limits


def test_a_hung_call_times_out_and_its_worker_is_stopped_while_the_other_serves(
    make_pool: Callable[..., WorkerPool], tmp_path: Path
) -> None:
    pool = make_pool(2)
    submitted = time.monotonic()
    hung = pool.submit_limited(work.hang, (str(tmp_path / "pid"),), {}, timeout=0.5)
    pid = read_pid(tmp_path / "pid")
    served = {pool.submit(work.getpid).result(WAIT) for _ in range(5)}
    assert pid not in served  # the other worker served meanwhile
    error = hung.exception(WAIT)
    assert isinstance(error, ItemTimeoutError)
    assert not isinstance(error, SoftTimeLimitExceeded)
    assert (error.function, error.limit) == ("hang", 0.5)
    assert error.elapsed >= 0.5
    assert "its worker was stopped" in str(error)
    assert time.monotonic() - submitted < 10
    wait_until(lambda: not alive(pid), timeout=WAIT)
    wait_until(lambda: pool.stats()["restarts"]["timeout"] == 1, timeout=WAIT)
    assert pool.submit(work.square, 3).result(WAIT) == 9


def test_a_hung_call_that_ignores_sigterm_is_sigkilled_after_the_grace(
    make_pool: Callable[..., WorkerPool], tmp_path: Path
) -> None:
    pool = make_pool(1, kill_grace_seconds=0.5)
    hung = pool.submit_limited(
        work.hang_ignoring_sigterm, (str(tmp_path / "pid"),), {}, timeout=0.3
    )
    failed: list[float] = []  # on the manager thread, just after its SIGTERM
    hung.add_done_callback(lambda _: failed.append(time.monotonic()))
    pid = read_pid(tmp_path / "pid")
    assert isinstance(hung.exception(WAIT), ItemTimeoutError)
    wait_until(lambda: not alive(pid), timeout=WAIT)
    assert time.monotonic() - failed[0] >= 0.4  # it outlived SIGTERM until SIGKILL
    assert pool.submit(work.square, 3).result(WAIT) == 9


def test_the_processes_a_timed_out_call_started_are_killed_with_its_worker(
    make_pool: Callable[..., WorkerPool], tmp_path: Path
) -> None:
    pool = make_pool(1, kill_grace_seconds=0.5)
    path = tmp_path / "pids"
    hung = pool.submit_limited(work.hang_with_grandchildren, (str(path),), {}, timeout=1.5)
    wait_until(path.exists, timeout=WAIT)
    grandchildren = [int(pid) for pid in path.read_text().split()]
    assert len(grandchildren) == 2
    assert isinstance(hung.exception(WAIT), ItemTimeoutError)
    # ``sleep`` dies of SIGTERM; the other ignores it and dies of the SIGKILL
    # sent to the group once the worker is gone.
    wait_until(lambda: not any(alive(pid) for pid in grandchildren), timeout=WAIT)


def test_a_soft_time_limit_raises_inside_the_function(
    make_pool: Callable[..., WorkerPool],
) -> None:
    pool = make_pool(1)
    pid = pool.submit(work.getpid).result(WAIT)
    soft = pool.submit_limited(work.sleep_soft, (30,), {}, soft_timeout=0.3)
    error = soft.exception(WAIT)
    assert isinstance(error, SoftTimeLimitExceeded)
    assert (error.function, error.limit) == ("sleep_soft", 0.3)
    assert "soft limit" in str(error)
    caught = pool.submit_limited(work.catch_soft, (30,), {}, soft_timeout=0.3)
    assert caught.result(WAIT) == "caught"
    # A call done before its soft limit is untouched, and no alarm rings later.
    quick = pool.submit_limited(work.sleep_soft, (0.01,), {}, soft_timeout=0.5)
    assert quick.result(WAIT) == "slept"
    assert pool.submit(work.sleep_soft, 0.7).result(WAIT) == "slept"
    assert pool.submit(work.getpid).result(WAIT) == pid  # the worker was never replaced


def test_current_item_shows_the_calls_name_and_limits(
    make_pool: Callable[..., WorkerPool],
) -> None:
    pool = make_pool(1)
    limited = pool.submit_limited(work.token_limits, (), {}, timeout=30, soft_timeout=20)
    assert limited.result(WAIT) == ("token_limits", 30.0, 20.0)
    named = pool.submit_limited(work.token_limits, (), {}, timeout=9, name="job-7")
    assert named.result(WAIT) == ("job-7", 9.0, None)
    assert pool.submit(work.token_limits).result(WAIT) == ("token_limits", None, None)


# ------------------------------------------------------------ cancellation


def test_a_call_cancelled_in_the_queue_never_runs(
    make_pool: Callable[..., WorkerPool], tmp_path: Path
) -> None:
    pool = make_pool(1)
    blocker = pool.submit(work.hang, str(tmp_path / "pid"))
    read_pid(tmp_path / "pid")
    marker = tmp_path / "ran"
    queued = pool.submit(work.touch, str(marker))
    assert not queued.running()
    assert queued.cancel() and queued.cancelled()
    after = pool.submit(work.square, 2)
    assert pool.stats()["pending"] == 1  # the cancelled call does not count
    assert blocker.cancel()
    assert after.result(WAIT) == 4  # it ran after the cancelled call's turn
    assert not marker.exists()
    assert pool.stats()["restarts"]["cancelled"] == 1  # the blocker's only


def test_cancelling_a_running_call_stops_and_replaces_its_worker(
    make_pool: Callable[..., WorkerPool], tmp_path: Path
) -> None:
    pool = make_pool(1)
    running = pool.submit(work.hang, str(tmp_path / "pid"))
    pid = read_pid(tmp_path / "pid")
    assert running.running()
    assert running.cancel() is True
    assert running.cancelled() and running.done() and not running.running()
    assert running.cancel() is True  # again: still cancelled, no second notification
    wait_until(lambda: not alive(pid), timeout=WAIT)
    assert pool.submit(work.getpid).result(WAIT) != pid
    assert pool.stats()["restarts"]["cancelled"] == 1


@pytest.mark.parametrize("how", ["wait", "as_completed"])
def test_waiters_return_for_a_running_call_cancelled_meanwhile(
    make_pool: Callable[..., WorkerPool], tmp_path: Path, how: str
) -> None:
    pool = make_pool(1)
    running = pool.submit(work.hang, str(tmp_path / "pid"))
    read_pid(tmp_path / "pid")

    def cancel_once_waited_on() -> None:
        wait_until(lambda: bool(running._waiters), timeout=WAIT)
        running.cancel()

    canceller = threading.Thread(target=cancel_once_waited_on, name="canceller")
    canceller.start()
    try:
        if how == "wait":
            done, _ = concurrent.futures.wait([running], timeout=WAIT)
            assert running in done
        else:
            assert next(concurrent.futures.as_completed([running], timeout=WAIT)) is running
    finally:
        canceller.join()
    assert running.cancelled()


# ------------------------------------------------------------ recycling


def test_max_tasks_per_child_replaces_workers_without_hanging(
    make_pool: Callable[..., WorkerPool],
) -> None:
    # gh-115634: ProcessPoolExecutor(1, max_tasks_per_child=2) hangs on the
    # third of these items.
    pool = make_pool(1, max_tasks_per_child=2)
    submitted = [f.result(WAIT) for f in [pool.submit(work.getpid) for _ in range(10)]]
    mapped = list(pool.map(work.pid_of, range(10), timeout=60))
    for pids in (submitted, mapped):
        pairs = [pids[i : i + 2] for i in range(0, 10, 2)]
        assert all(a == b for a, b in pairs), pids
        assert len({a for a, _ in pairs}) == 5, pids
    assert not set(submitted) & set(mapped)
    wait_until(lambda: pool.stats()["restarts"]["max_tasks"] == 10, timeout=WAIT)


def test_a_worker_over_its_memory_limit_is_replaced_after_its_call(
    make_pool: Callable[..., WorkerPool],
) -> None:
    pool = make_pool(1, max_memory_per_child=120 * MiB)
    small = pool.submit(work.getpid).result(WAIT)
    assert pool.submit(work.getpid).result(WAIT) == small  # under the limit: kept
    big = pool.submit(work.keep_megabytes, 150).result(WAIT)
    assert big == small  # the call that grew it still returned
    assert pool.submit(work.getpid).result(WAIT) != big
    assert pool.stats()["restarts"]["max_memory"] == 1


def test_a_worker_older_than_its_age_limit_is_replaced(
    make_pool: Callable[..., WorkerPool], tmp_path: Path
) -> None:
    pool = make_pool(1, max_child_age_seconds=0.3)
    # After a call longer than the age limit the worker leaves by itself.
    old = pool.submit(work.pid_then_sleep, str(tmp_path / "pid"), 0.4).result(WAIT)
    young = pool.submit(work.getpid).result(WAIT)
    assert young != old
    # An idle worker that aged is not given another call.
    time.sleep(0.4)  # lets the age limit pass (a deadline, not a hope)
    assert pool.submit(work.getpid).result(WAIT) != young
    wait_until(lambda: pool.stats()["restarts"]["max_age"] == 2, timeout=WAIT)


# ------------------------------------------------------------ initializer


def test_a_failing_initializer_breaks_the_pool(make_pool: Callable[..., WorkerPool]) -> None:
    pool = make_pool(1, initializer=work.init_fail)
    error = pool.submit(work.square, 2).exception(WAIT)
    assert isinstance(error, BrokenProcessPool) and not isinstance(error, WorkerDiedError)
    assert "initializer failed: ValueError: no database" in str(error)
    assert pool.broken
    with pytest.raises(BrokenProcessPool, match="initializer failed"):
        pool.submit(work.square, 3)


def test_a_worker_that_dies_before_it_is_ready_breaks_the_pool(
    make_pool: Callable[..., WorkerPool],
) -> None:
    pool = make_pool(1, initializer=work.init_exit)
    error = pool.submit(work.square, 2).exception(WAIT)
    assert isinstance(error, BrokenProcessPool)
    assert "died (exit code 4) before it was ready" in str(error)
    assert pool.broken


@pytest.mark.parametrize("kills", [2, 3])
def test_workers_killed_from_outside_before_ready_are_replaced_until_it_loops(
    make_pool: Callable[..., WorkerPool], tmp_path: Path, kills: int
) -> None:
    starting = tmp_path / "starting"
    starting.mkdir()
    release = tmp_path / "release"
    pool = make_pool(1, initializer=work.init_gate, initargs=(str(starting), str(release)))
    future = pool.submit(work.square, 5)
    killed: set[int] = set()

    def new_pids() -> set[int]:
        return {int(p.name) for p in starting.iterdir() if p.name.isdigit()} - killed

    for _ in range(kills):  # each worker as it runs its initializer
        wait_until(lambda: bool(new_pids()), timeout=WAIT)
        pid = min(new_pids())
        os.kill(pid, signal.SIGKILL)
        killed.add(pid)
    release.touch()
    if kills <= STARTUP_KILLS_TOLERATED:
        assert future.result(WAIT) == 25
        assert not pool.broken
        assert pool.stats()["restarts"]["died"] == kills
    else:  # the pool stops starting workers that never get ready
        error = future.exception(WAIT)
        assert isinstance(error, BrokenProcessPool)
        assert "died (exit code -9) before it was ready" in str(error)
        assert pool.broken


def test_the_initializer_runs_in_every_worker_including_replacements(
    make_pool: Callable[..., WorkerPool],
) -> None:
    pool = make_pool(1, initializer=work.remember, initargs=("db",), max_tasks_per_child=1)
    first = [pool.submit(work.recall).result(WAIT) for _ in range(3)]
    assert pool.submit(work.exit_now).exception(WAIT) is not None
    values = [*first, pool.submit(work.recall).result(WAIT)]
    assert [value for value, _ in values] == ["db"] * 4
    assert len({pid for _, pid in values}) == 4


# ------------------------------------------------------------ shutdown


def test_shutdown_runs_the_queued_calls_then_leaves_nothing_behind(
    make_pool: Callable[..., WorkerPool],
) -> None:
    pool = make_pool(1)
    futures = [pool.submit(work.square, i) for i in range(6)]
    pool.shutdown(wait=True)
    assert [f.result(0) for f in futures] == [i * i for i in range(6)]
    assert not own_children()
    assert not [t for t in threading.enumerate() if t.name.endswith("-manager")]
    assert "shutdown" in repr(pool)


def test_shutdown_with_cancel_futures_cancels_the_queued_calls(
    make_pool: Callable[..., WorkerPool], tmp_path: Path
) -> None:
    pool = make_pool(1)
    release = tmp_path / "release"
    running = pool.submit(work.gated, str(tmp_path / "pid"), str(release))
    pid = read_pid(tmp_path / "pid")
    markers = [tmp_path / f"ran-{i}" for i in range(4)]
    queued = [pool.submit(work.touch, str(marker)) for marker in markers]
    pool.shutdown(wait=False, cancel_futures=True)
    release.touch()
    pool.shutdown(wait=True)
    assert running.result(0) == pid  # the running call finished
    assert all(f.cancelled() for f in queued)
    assert not any(marker.exists() for marker in markers)
    assert not own_children()


def test_submit_after_shutdown_raises(make_pool: Callable[..., WorkerPool]) -> None:
    pool = make_pool(1)
    pool.shutdown()
    pool.shutdown()  # twice is fine
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        pool.submit(work.square, 2)
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        pool.submit_limited(work.square, (2,), {}, timeout=1)


def test_shutdown_without_waiting_then_with_waiting_joins_everything(
    make_pool: Callable[..., WorkerPool],
) -> None:
    pool = make_pool(2)
    futures = [pool.submit(work.sleep_soft, 0.2) for _ in range(3)]
    pool.shutdown(wait=False)
    pool.shutdown(wait=True)
    assert all(f.result(0) == "slept" for f in futures)
    assert not own_children()
    assert not [t for t in threading.enumerate() if t.name.endswith("-manager")]


def test_shutdown_from_a_done_callback_does_not_wait_for_its_own_thread(
    make_pool: Callable[..., WorkerPool], tmp_path: Path
) -> None:
    pool = make_pool(1)
    ran_on: list[str] = []
    called = threading.Event()

    def callback(_: concurrent.futures.Future[Any]) -> None:
        pool.shutdown(wait=True)
        ran_on.append(threading.current_thread().name)
        called.set()

    release = tmp_path / "release"
    pool.submit(work.gated, str(tmp_path / "pid"), str(release)).add_done_callback(callback)
    release.touch()
    assert called.wait(WAIT)
    assert ran_on == ["neoleasepool-process-manager"]
    pool.shutdown(wait=True)
    assert not own_children()


def test_kill_workers_fails_the_busy_calls_and_the_pool_goes_on(
    make_pool: Callable[..., WorkerPool], tmp_path: Path
) -> None:
    pool = make_pool(2)
    busy = [pool.submit(work.hang, str(tmp_path / f"pid-{i}")) for i in range(2)]
    pids = [read_pid(tmp_path / f"pid-{i}") for i in range(2)]
    queued = pool.submit(work.getpid)
    pool.kill_workers()
    for future, pid in zip(busy, pids, strict=True):
        error = future.exception(WAIT)
        assert isinstance(error, WorkerDiedError)
        assert f"pid={pid} was stopped by kill_workers()" in str(error)
    assert queued.result(WAIT) not in pids  # queued calls go on, on new workers
    wait_until(lambda: pool.stats()["restarts"]["killed"] == 2, timeout=WAIT)
    assert not pool.broken


def test_kill_workers_then_shutdown_return_promptly_while_calls_hang(
    make_pool: Callable[..., WorkerPool], tmp_path: Path
) -> None:
    pool = make_pool(2, kill_grace_seconds=0.5)
    pool.submit(work.hang_ignoring_sigterm, str(tmp_path / "a"))
    pool.submit(work.hang, str(tmp_path / "b"))
    read_pid(tmp_path / "a")
    read_pid(tmp_path / "b")
    started = time.monotonic()
    pool.kill_workers()
    pool.shutdown(wait=True)
    assert time.monotonic() - started < 5
    assert not own_children()


WORKERS_OUTLIVE_PARENT = textwrap.dedent(
    """
    import multiprocessing, os, sys
    from neoleasepool.backends.procpool import WorkerPool
    from tests.procpool_work import pid_barrier

    if __name__ == "__main__":
        pool = WorkerPool(2, mp_context=multiprocessing.get_context(sys.argv[1]))
        paths = [f"{sys.argv[2]}-{i}" for i in range(2)]
        calls = [pool.submit(pid_barrier, path, paths) for path in paths]  # on two workers
        print(*[call.result(60) for call in calls], flush=True)
        os._exit(0)  # no shutdown: the idle workers must notice and leave
    """
)


@pytest.mark.parametrize("method", ["forkserver", "fork"])
def test_idle_workers_exit_when_their_parent_dies(tmp_path: Path, method: str) -> None:
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} here")
    script = tmp_path / "parent.py"
    script.write_text(WORKERS_OUTLIVE_PARENT)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(
        [sys.executable, str(script), method, str(tmp_path / "pid")],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert done.returncode == 0, done.stderr
    pids = [int(pid) for pid in done.stdout.split()]
    assert len(set(pids)) == 2
    wait_until(lambda: not any(alive(pid) for pid in pids), timeout=WAIT)


LEFT_OPEN_AT_EXIT = textwrap.dedent(
    """
    import sys
    from neoleasepool.backends.procpool import WorkerPool
    from tests.procpool_work import sleep_soft, touch

    if __name__ == "__main__":
        pool = WorkerPool(1)
        pool.submit(sleep_soft, 0.3)
        pool.submit(touch, sys.argv[1])  # still queued when the program ends
    """
)


def test_a_pool_left_open_finishes_its_calls_and_lets_the_interpreter_exit(
    tmp_path: Path,
) -> None:
    script = tmp_path / "open.py"
    script.write_text(LEFT_OPEN_AT_EXIT)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "ran")],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "ran").exists()


def test_a_pool_dropped_without_shutdown_stops_by_itself() -> None:
    pool = WorkerPool(1, name="dropped")
    assert pool.submit(work.square, 2).result(WAIT) == 4
    del pool
    gc.collect()
    wait_until(
        lambda: not [t for t in threading.enumerate() if t.name == "dropped-manager"],
        timeout=WAIT,
    )
    assert not own_children()


def test_a_spawn_context_works_too(make_pool: Callable[..., WorkerPool]) -> None:
    pool = make_pool(1, mp_context=multiprocessing.get_context("spawn"))
    assert pool.submit(work.square, 3).result(60) == 9
    assert isinstance(pool.submit(work.exit_now).exception(WAIT), WorkerDiedError)
    assert pool.submit(work.square, 4).result(60) == 16


# ------------------------------------------------------------ figures


def test_stats_and_repr_show_the_pools_state(
    make_pool: Callable[..., WorkerPool], tmp_path: Path
) -> None:
    pool = make_pool(1)
    assert repr(pool) == "<WorkerPool workers=0 busy=0 pending=0>"
    running = pool.submit(work.hang, str(tmp_path / "pid"))
    read_pid(tmp_path / "pid")
    queued = pool.submit(work.square, 3)
    stats = pool.stats()
    assert json.loads(json.dumps(stats)) == stats
    assert (stats["workers"], stats["busy"], stats["idle"], stats["pending"]) == (1, 1, 0, 1)
    assert repr(pool) == "<WorkerPool workers=1 busy=1 pending=1>"
    assert "state=running" in repr(running)
    running.cancel()
    assert queued.result(WAIT) == 9
    stats = pool.stats()
    assert stats["calls_done"] == 1
    assert stats["restarts"] == {
        "died": 0, "timeout": 0, "cancelled": 1, "killed": 0,
        "max_tasks": 0, "max_memory": 0, "max_age": 0,
    }
    assert (stats["workers"], stats["busy"], stats["idle"], stats["pending"]) == (1, 0, 1, 0)
    assert stats["broken"] is False and stats["max_workers"] == 1


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"max_workers": 0}, "max_workers"),
        ({"max_workers": True}, "max_workers"),
        ({"max_workers": 1.5}, "max_workers"),
        ({"max_tasks_per_child": 0}, "max_tasks_per_child"),
        ({"max_tasks_per_child": True}, "max_tasks_per_child"),
        ({"max_memory_per_child": -1}, "max_memory_per_child"),
        ({"max_memory_per_child": math.inf}, "max_memory_per_child"),
        ({"max_child_age_seconds": 0}, "max_child_age_seconds"),
        ({"max_child_age_seconds": math.nan}, "max_child_age_seconds"),
        ({"max_child_age_seconds": math.inf}, "max_child_age_seconds"),
        ({"max_child_age_seconds": False}, "max_child_age_seconds"),
        ({"kill_grace_seconds": -1}, "kill_grace_seconds"),
        ({"kill_grace_seconds": math.nan}, "kill_grace_seconds"),
        ({"kill_grace_seconds": True}, "kill_grace_seconds"),
        ({"mp_context": "spawn"}, "mp_context"),
        ({"initializer": 5}, "initializer"),
        ({"initargs": 5}, "initargs"),
        ({"name": ""}, "name"),
    ],
)
def test_bad_arguments_are_refused_at_construction(kwargs: dict[str, Any], name: str) -> None:
    arguments = {"max_workers": 1, **kwargs}
    with pytest.raises(ValueError, match=f"^{name}"):
        WorkerPool(**arguments)


@pytest.mark.parametrize("limit", ["timeout", "soft_timeout"])
@pytest.mark.parametrize("value", [0, -1, math.nan, math.inf, True])
def test_bad_time_limits_are_refused_at_submit(
    make_pool: Callable[..., WorkerPool], limit: str, value: Any
) -> None:
    pool = make_pool(1)
    with pytest.raises(ValueError, match=f"^{limit}"):
        pool.submit_limited(work.square, (2,), {}, **{limit: value})
    assert pool.stats()["pending"] == 0


# ------------------------------------------------------------ stress


def test_every_future_ends_once_under_random_crashes_timeouts_and_cancels(
    make_pool: Callable[..., WorkerPool],
) -> None:
    rng = random.Random(int(os.environ.get("PROCPOOL_SEED", "11")))
    pool = make_pool(2)
    ends: Counter[int] = Counter()
    lock = threading.Lock()

    def ended(future: concurrent.futures.Future[Any]) -> None:
        with lock:
            ends[id(future)] += 1

    kinds = rng.choices(
        ["compute", "raise", "crash", "timeout", "cancel"], weights=[80, 8, 4, 4, 4], k=300
    )
    futures: list[tuple[str, int, concurrent.futures.Future[Any]]] = []
    for start in range(0, len(kinds), 20):
        chunk = []
        for i in range(start, start + 20):
            kind = kinds[i]
            future: concurrent.futures.Future[Any]
            if kind == "compute":
                future = pool.submit(work.compute, i)
            elif kind == "raise":
                future = pool.submit(work.fail, str(i))
            elif kind == "crash":
                future = pool.submit(work.exit_now, 7)
            elif kind == "timeout":
                future = pool.submit_limited(work.hang, (None, 60), {}, timeout=0.2)
            else:
                future = pool.submit(work.hang, None, 60)
            future.add_done_callback(ended)
            chunk.append((kind, i, future))
        for kind, _, future in chunk:  # cancel hung calls: some queued, some running
            if kind == "cancel":
                if rng.random() < 0.5:
                    wait_until(functools.partial(started, future), timeout=60)
                future.cancel()
        _, not_done = concurrent.futures.wait([f for _, _, f in chunk], timeout=120)
        assert not not_done
        futures += chunk

    wait_until(lambda: len(ends) == len(futures), timeout=WAIT)
    assert set(ends.values()) == {1}  # every future ended exactly once
    results: Counter[str] = Counter()
    for kind, i, future in futures:
        got = outcome(future)
        if kind == "compute":
            assert got == work.compute(i)
        elif kind == "raise":
            assert isinstance(got, ValueError) and str(got) == str(i)
        elif kind == "crash":
            assert isinstance(got, WorkerDiedError)
        elif kind == "timeout":
            assert isinstance(got, ItemTimeoutError)
        else:
            assert got == "cancelled"
            results["cancelled while running"] += future.sent  # type: ignore[attr-defined]
        results[kind] += 1
    stats = pool.stats()
    assert stats["calls_done"] == results["compute"] + results["raise"]
    wait_until(
        lambda: pool.stats()["restarts"]
        == {
            "died": results["crash"],
            "timeout": results["timeout"],
            "cancelled": results["cancelled while running"],
            "killed": 0, "max_tasks": 0, "max_memory": 0, "max_age": 0,
        },
        timeout=WAIT,
    )
    assert results["crash"] and results["timeout"] and results["cancelled while running"]
    assert not pool.broken


USED_AFTER_FORK = textwrap.dedent(
    """
    import os, time, warnings
    from concurrent.futures.process import BrokenProcessPool
    from neoleasepool.backends.procpool import WorkerPool

    if __name__ == "__main__":
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads: the point
        pool = WorkerPool(1)
        assert pool.submit(pow, 2, 5).result(60) == 32
        child = os.fork()
        if child == 0:
            try:
                pool.submit(pow, 2, 3)
            except BrokenProcessPool as exc:
                os._exit(0 if "a forked child cannot use it" in str(exc) else 4)
            os._exit(3)
        _, status = os.waitpid(child, 0)
        spent = time.process_time()
        time.sleep(0.5)  # the parent's manager must stay idle: measured, not waited on
        spent = time.process_time() - spent
        print(os.waitstatus_to_exitcode(status), round(spent, 3), pool.submit(pow, 2, 6).result(60))
        pool.shutdown()
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_cannot_use_its_parents_pool_and_the_parent_goes_on(
    tmp_path: Path,
) -> None:
    script = tmp_path / "fork.py"
    script.write_text(USED_AFTER_FORK)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env,
    )
    assert done.returncode == 0, done.stderr
    code, spent, result = done.stdout.split()
    assert code == "0"  # the child got BrokenProcessPool saying why
    assert float(spent) < 0.25  # no busy loop in the parent (it spun at 100% before)
    assert result == "64"
