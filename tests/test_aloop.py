"""ALoop: a named loop in a thread, and the blocking bridge into it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
import time
from collections.abc import Iterator

import pytest

from neoleasepool import ALoop, LeasePoolNotStartedError, WrongLoopError


@pytest.fixture
def aloop() -> Iterator[ALoop]:
    loop = ALoop("t")
    loop.start()
    yield loop
    loop.stop(wait=1.0)


async def add(x: int, y: int = 0) -> int:
    await asyncio.sleep(0)
    return x + y


async def thread_name() -> str:
    return threading.current_thread().name


def test_thread_is_named_after_the_aloop(aloop: ALoop) -> None:
    assert aloop.call(thread_name) == "supervisor_aloop_t"
    assert aloop.name == "t"
    assert aloop.active
    assert aloop.get_loop() is aloop.loop


def test_call_returns_the_result_with_args_and_kwargs(aloop: ALoop) -> None:
    assert aloop.call(add, 1, y=2) == 3


def test_call_raises_what_the_coroutine_raised(aloop: ALoop) -> None:
    async def boom() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        aloop.call(boom)


def test_call_from_the_aloops_own_thread_raises_instead_of_deadlocking(
    aloop: ALoop,
) -> None:
    async def nested() -> str:
        try:
            aloop.call(add, 1)
        except WrongLoopError as exc:
            return str(exc)
        return "no error"

    message = aloop.call(nested)
    assert "must not be called from the thread" in message


def test_run_coroutine_threadsafe_from_own_thread_raises_runtime_error(
    aloop: ALoop,
) -> None:
    async def nested() -> bool:
        with pytest.raises(RuntimeError):
            aloop.run_coroutine_threadsafe(add(1))
        return True

    assert aloop.run_coroutine_threadsafe(nested())


def test_spawn_and_run_coroutine_threadsafe(aloop: ALoop) -> None:
    future = aloop.spawn_coroutine_threadsafe(add(2, 3))
    assert isinstance(future, concurrent.futures.Future)
    assert future.result(timeout=5) == 5
    assert aloop.run_coroutine_threadsafe(add(4, 4)) == 8


def test_not_running_aloop_refuses_work_with_a_clear_error() -> None:
    loop = ALoop("idle")
    coro = add(1)
    with pytest.raises(LeasePoolNotStartedError, match="not running"):
        loop.spawn_coroutine_threadsafe(coro)
    assert coro.cr_frame is None  # type: ignore[attr-defined]  # closed: no warning
    with pytest.raises(RuntimeError, match="start it"):
        loop.call(add, 1)
    with pytest.raises(RuntimeError):
        loop.call_soon(print)
    assert loop.get_loop() is None


def test_cancelling_the_submitted_future_cancels_the_task(aloop: ALoop) -> None:
    started = threading.Event()
    cancelled = threading.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    future = aloop.submit(forever)
    assert started.wait(5)
    assert future.cancel()
    assert cancelled.wait(5)


def test_call_with_timeout_cancels_and_raises_timeout_error(aloop: ALoop) -> None:
    cancelled = threading.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(TimeoutError, match="cancelled"):
        aloop.call_with_timeout(0.05, slow)
    assert cancelled.wait(5)
    assert aloop.call_with_timeout(5, add, 1, 1) == 2
    with pytest.raises(ValueError, match="timeout"):
        aloop.call_with_timeout(-1, add, 1)


def test_call_soon_and_call_sync_run_on_the_loop_thread(aloop: ALoop) -> None:
    seen: list[str] = []
    done = threading.Event()

    def note(tag: str, *, end: bool = False) -> None:
        seen.append(f"{tag}:{threading.current_thread().name}")
        if end:
            done.set()

    aloop.call_soon(note, "soon", end=True)
    assert done.wait(5)
    assert aloop.call_sync(lambda: threading.current_thread().name) == ("supervisor_aloop_t")
    assert seen == ["soon:supervisor_aloop_t"]


def test_stop_waits_for_running_tasks_by_default() -> None:
    loop = ALoop("drain")
    loop.start()
    future = loop.submit(asyncio.sleep, 0.1, "done")
    loop.stop()
    assert future.result(timeout=0) == "done"
    assert not loop.active
    assert loop.thread is not None and not loop.thread.is_alive()


def test_stop_with_seconds_cancels_a_stuck_coroutine_after_the_wait() -> None:
    loop = ALoop("stuck")
    loop.start()
    future = loop.submit(asyncio.sleep, 60)
    begin = time.monotonic()
    loop.stop(wait=0.2)
    took = time.monotonic() - begin
    assert 0.15 <= took < 5
    assert future.cancelled()


def test_stop_with_cancel_tasks_cancels_at_once() -> None:
    loop = ALoop("cancel")
    loop.start()
    future = loop.submit(asyncio.sleep, 60)
    begin = time.monotonic()
    loop.stop(wait=True, cancel_tasks=True)
    assert time.monotonic() - begin < 5
    assert future.cancelled()


def test_stop_from_the_aloops_own_thread_does_not_join_itself() -> None:
    loop = ALoop("self")
    loop.start()

    async def stop_me() -> str:
        loop.stop()
        return "requested"

    assert loop.call(stop_me) == "requested"
    loop.join(5)
    assert not loop.active


def test_stop_is_idempotent_and_an_aloop_can_restart() -> None:
    loop = ALoop("again")
    loop.start()
    loop.start()  # no-op
    first = loop.loop
    loop.stop()
    loop.stop()
    loop.start()
    assert loop.loop is not first
    assert loop.call(add, 1, 1) == 2
    loop.stop()
    assert loop.stats()["runs"] == 2


def test_start_while_the_previous_run_winds_down_waits_without_deadlocking() -> None:
    loop = ALoop("restart")
    loop.start()
    entered, gate = threading.Event(), threading.Event()

    def blocked() -> None:
        entered.set()
        gate.wait(10)

    async def offload() -> None:
        await asyncio.get_running_loop().run_in_executor(None, blocked)

    loop.submit(offload)
    assert entered.wait(5)
    first = loop.thread
    loop.stop(wait=False)  # the old run now waits in shutdown_default_executor
    restarted = concurrent.futures.Future[None]()
    joining = threading.Event()
    join = loop._join

    def spy_join(thread: threading.Thread | None, timeout: float | None = None) -> None:
        if thread is first:
            joining.set()
        join(thread, timeout)

    loop._join = spy_join  # type: ignore[method-assign]

    def restart() -> None:
        loop.start()
        restarted.set_result(None)

    starter = threading.Thread(target=restart, name="restarter")
    starter.start()
    try:
        assert joining.wait(5)  # start() waits for the old run...
        assert not restarted.done()
        gate.set()  # ...whose thread needs the aloop's lock to finish
        restarted.result(timeout=5)
        assert loop.thread is not first and loop.active
        assert first is not None and not first.is_alive()
        assert loop.call(add, 2, 3) == 5
    finally:
        gate.set()
        starter.join(5)
        if not starter.is_alive():  # else deadlocked: fail, leaving the threads
            loop.stop(wait=5)


def test_default_executor_is_shut_down_on_stop() -> None:
    loop = ALoop("executor")
    loop.start()

    async def offload() -> int:
        return await asyncio.get_running_loop().run_in_executor(None, sum, [1, 2])

    assert loop.call(offload) == 3
    loop.stop()  # the no_leaks fixture checks the executor's thread is gone


def test_stats_are_json_and_repr_shows_state(aloop: ALoop) -> None:
    aloop.call(add, 1)
    stats = aloop.stats()
    json.dumps(stats)
    assert stats["name"] == "t" and stats["active"] and stats["submitted"] == 1
    assert "active" in repr(aloop)
