"""Helpers for tests: a coroutine runner, deadline-bounded waits, factories
for managers and grinders with small defaults, services started for the
length of a block, a gate that holds a thread-backend call, and Ctrl-C
pressed while the main thread waits in ``block()``.

No pytest-asyncio: :func:`run` drives a coroutine on a fresh loop with
``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, Protocol, TypeVar

from neoleasepool import LeasedExecutorManager, TaskSupervisor, WorkGrinder

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], *, timeout: float = 60.0) -> T:
    """Run ``coro`` to completion on a new event loop, bounded by ``timeout``."""

    async def _bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(_bounded())


def wait_until(
    predicate: Callable[[], bool], *, timeout: float = 10.0, interval: float = 0.005
) -> None:
    """Wait for ``predicate()`` to hold, failing the test after ``timeout``.

    For conditions in another thread or process that offer nothing to wait
    on; the deadline is generous so a loaded machine does not flake.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {predicate}")
        time.sleep(interval)


async def await_until(
    predicate: Callable[[], bool], *, timeout: float = 10.0, interval: float = 0.005
) -> None:
    """Async twin of :func:`wait_until`."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {predicate}")
        await asyncio.sleep(interval)


def error_in_other_loop(coro_fn: Callable[[], Coroutine[Any, Any, Any]]) -> BaseException | None:
    """Run ``coro_fn()`` on a new loop in the calling thread; return what it raised.

    Call it in another thread (``asyncio.to_thread``) to use an object from a
    loop that does not own it.
    """
    try:
        asyncio.run(coro_fn())
    except BaseException as exc:
        return exc
    return None


def outcome(future: asyncio.Future[Any] | concurrent.futures.Future[Any]) -> object:
    """``result``, the exception, or ``"cancelled"`` of a future that must have ended."""
    assert future.done(), "a future was left unresolved"
    if future.cancelled():
        return "cancelled"
    exc = future.exception()
    return exc if exc is not None else future.result()


def make_manager(**kwargs: Any) -> LeasedExecutorManager:
    """A manager of one pool of one worker unless ``kwargs`` say otherwise."""
    kwargs.setdefault("max_pools", 1)
    kwargs.setdefault("workers_per_pool", 1)
    return LeasedExecutorManager(**kwargs)


def make_grinder(mgr: LeasedExecutorManager, **kwargs: Any) -> WorkGrinder:
    """A grinder on ``mgr`` that batches only when told to (by stop or 100 items)."""
    kwargs.setdefault("max_wait_seconds", 60.0)
    kwargs.setdefault("batch_size_threshold", 100)
    return WorkGrinder(executor_manager=mgr, **kwargs)


class _Service(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@contextlib.asynccontextmanager
async def serving(*services: _Service) -> AsyncIterator[None]:
    """Start ``services`` in order; stop them in reverse order however the block ends."""
    async with contextlib.AsyncExitStack() as stack:
        for service in services:
            await service.start()
            stack.push_async_callback(service.stop)
        yield


@contextlib.contextmanager
def started_supervisor(
    supervisor_id: str, *, max_threads: int, stop_wait: float
) -> Iterator[TaskSupervisor]:
    """A started :class:`TaskSupervisor` for the block, stopped after it."""
    supervisor = TaskSupervisor(id=supervisor_id)
    supervisor.set_thread_pool(max_size=max_threads)
    supervisor.start()
    try:
        yield supervisor
    finally:
        supervisor.stop(wait=stop_wait)


class Gate:
    """A thread-backend callable that signals when it starts and blocks until opened."""

    def __init__(self, value: object = "gate") -> None:
        self.started = threading.Event()
        self.opened = threading.Event()
        self.value = value
        self.calls = 0

    def __call__(self) -> object:
        self.calls += 1
        self.started.set()
        if not self.opened.wait(30):
            raise AssertionError("gate never opened")
        return self.value

    async def wait_started(self, timeout: float = 10.0) -> None:
        started = await asyncio.to_thread(self.started.wait, timeout)
        assert started, "gated call never started"


def waits_in_block(sup: TaskSupervisor) -> bool:
    """Whether a thread waits inside ``sup.block()`` (inside its ``try``, so
    that a ``KeyboardInterrupt`` there is the one it handles).

    ``block()`` waits on the supervisor's stop event, and a thread waiting on
    a ``threading.Event`` is one of its condition's waiters from just before
    it blocks until it is woken. Reading that (``threading``'s own record)
    is safe on any build; walking another running thread's stack is not on
    a free-threaded one, where it crashed the interpreter once.
    """
    return bool(sup._stopped._cond._waiters)  # type: ignore[attr-defined]


def ctrl_c_during_block(sup: TaskSupervisor, first: Callable[[], None] = lambda: None) -> None:
    """Run ``sup.block()`` on the main thread; a helper thread runs ``first``
    (to feed work, say), then sends SIGINT once the main thread waits there.

    SIGINT gets Python's default handler meanwhile, whatever the process
    inherited: a shell starts background jobs with SIGINT ignored, and
    Python then installs no handler of its own.
    """
    main = threading.main_thread().ident
    assert main is not None and threading.get_ident() == main, "signals reach the main thread"
    failures: list[BaseException] = []

    def interrupt() -> None:
        try:
            first()
            wait_until(lambda: waits_in_block(sup), timeout=30)
        except BaseException as exc:  # reported below; the Ctrl-C still comes
            failures.append(exc)
        finally:
            signal.pthread_kill(main, signal.SIGINT)  # never leave block() waiting

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    helper = threading.Thread(target=interrupt, name="ctrl-c")
    try:
        helper.start()
        sup.block()  # returns once the Ctrl-C has stopped the supervisor
    except KeyboardInterrupt:  # not as the test's own: pytest would end the session
        failures.append(AssertionError("the Ctrl-C arrived outside block()'s wait"))
    finally:
        helper.join(30)
        signal.signal(signal.SIGINT, previous)
    if failures:
        raise failures[0]


class Runs:
    """Calls of a target: start times, threads and keyword arguments; a test
    waits for the n-th call."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.threads: list[str] = []
        self.kwargs: list[dict[str, Any]] = []
        self._cond = threading.Condition()

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self.note(kwargs)

    def note(self, kwargs: dict[str, Any] | None = None) -> None:
        with self._cond:
            self.times.append(time.monotonic())
            self.threads.append(threading.current_thread().name)
            self.kwargs.append(kwargs or {})
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.times) >= count, timeout), (
                f"only {len(self.times)} of {count} runs"
            )


class AsyncRuns(Runs):
    """:class:`Runs` for a coroutine function target."""

    async def __call__(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        self.note(kwargs)

