"""The async background worker: a target run back to back from an aloop (private).

A :class:`BackgroundAsyncWorker` is a :class:`~.worker_base.BackgroundWorker`
whose loop is a coroutine, registered with the supervisor as an async
scheduler.  An async target is awaited on the worker's aloop; a sync one
runs in the supervisor's pool (or the worker's own ``pool``), one call at a
time, and a ``ProcessPoolExecutor`` runs it in a process (without the
``_worker`` argument, which does not pickle).  The timed, queued and
triggered kinds of :mod:`.workers` build on it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
from collections.abc import Callable
from typing import Any

from .._util.futures import transfer_concurrent
from ..backends.process import is_process_pool
from ..exceptions import LeasePoolNotStartedError, WrongLoopError
from ..loops.aloop import CANCEL_GRACE_SECONDS, ALoop
from .schedulers import LoopSpec
from .worker_base import BackgroundWorker

__all__ = ["BackgroundAsyncWorker"]


class BackgroundAsyncWorker(BackgroundWorker):
    """Runs its target back to back from a coroutine on an aloop.

    An async target is awaited on the aloop; a sync target runs in the
    supervisor's pool (or ``pool``), one call at a time.

    Args:
        name: See :class:`BackgroundWorker`.
        fn: See :class:`BackgroundWorker`.
        loop: The aloop (an :class:`ALoop`, its name, or its asyncio loop);
            by default the supervisor's default aloop, else its own loop.
            ``start(_loop=...)`` overrides it.
        pool: An executor for sync targets instead of the supervisor's pool;
            with a ``ProcessPoolExecutor`` the target gets no ``_worker``.
        **kwargs: The options of :class:`BackgroundWorker`.
    """

    def __init__(
        self,
        name: str | None = None,
        fn: Callable[..., Any] | None = None,
        *,
        loop: LoopSpec = None,
        pool: concurrent.futures.Executor | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, fn, **kwargs)
        self._loop_spec: LoopSpec = loop
        self.pool = pool
        #: The aloop the worker runs on while started.
        self.aloop: ALoop | None = None
        #: neotasker's name: the asyncio loop the worker runs on.
        self.worker_loop: asyncio.AbstractEventLoop | None = None
        self._target_is_async = False

    def _apply_start_options(self, kwargs: dict[str, Any]) -> None:
        super()._apply_start_options(kwargs)
        if "_loop" in kwargs:
            self._loop_spec = kwargs.pop("_loop")

    def _start(self) -> None:
        aloop = self.supervisor.resolve_aloop(self._loop_spec)
        self.aloop = aloop
        self.worker_loop = aloop.get_loop()
        self._target_is_async = inspect.iscoroutinefunction(self.run)
        if self._executor_is_process_pool():
            self._target_kwargs.pop("_worker", None)
        self._prepare()
        future = self.supervisor.register_scheduler(self)
        self._future = future
        self._wait_ready(future, wait=not aloop.in_loop_thread())

    def _executor_is_process_pool(self) -> bool:
        executor = self.pool if self.pool is not None else self.supervisor.thread_pool
        return is_process_pool(executor)

    def _prepare(self) -> None:
        """Create the loop's asyncio primitives (before the loop starts)."""

    def _on_own_thread(self) -> bool:
        aloop = self.aloop
        return super()._on_own_thread() or (aloop is not None and aloop.in_loop_thread())

    def _require_worker_loop(self, method: str, alternative: str) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is None or running is not self.worker_loop:
            raise WrongLoopError(
                f"{type(self).__name__}.{method}() must be awaited on the worker's "
                f"own loop; from other threads or loops use {alternative}"
            )

    def _require_running(self, method: str) -> ALoop:
        aloop = self.aloop
        if not self._active or aloop is None:
            raise LeasePoolNotStartedError(
                f"{type(self).__name__} {self.name!r} is not running: call "
                f"start() before {method}()"
            )
        return aloop

    def _wake_threadsafe(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the worker's loop, if that loop still runs."""
        aloop = self.aloop
        if aloop is None:
            return
        try:
            aloop.call_soon(fn, *args)
        except LeasePoolNotStartedError:
            pass  # the aloop is gone, and the worker loop with it

    def _give_up_waiting(self) -> None:
        super()._give_up_waiting()
        future = self._future
        if future is not None and future.cancel() and not self._on_own_thread():
            self._stopped.wait(CANCEL_GRACE_SECONDS)

    async def loop(self) -> None:  # type: ignore[override]
        """The worker loop (a coroutine on the worker's aloop)."""
        self._mark_started()
        try:
            await self._serve()
        except Exception as exc:
            self._crashed(exc)  # logged there, once; the loop ends normally
        finally:
            self._loop_exited()

    async def _serve(self) -> None:
        while self._active and await self._launch():
            await asyncio.sleep(0)  # let other tasks run between targets

    async def _launch(self, *args: Any) -> bool:
        """Run the target once; whether the worker goes on."""
        if not self._target_is_async:
            future = self._submit_sync(*args)
            return bool(await transfer_concurrent(future, asyncio.get_running_loop()))
        self._count_run()
        try:
            return await self.run(*args, **self._target_kwargs) is not False
        except Exception:
            return self._target_failed()

    def _submit_sync(self, *args: Any) -> concurrent.futures.Future[Any]:
        if self._executor_is_process_pool():
            executor = self.pool or self.supervisor.thread_pool
            self._count_run()
            future = executor.submit(self.run, *args, **self._target_kwargs)
            return _process_outcome(self, future)
        if self.pool is not None:
            return self.pool.submit(self._call_sync, self._target_kwargs, *args)
        return self.supervisor.spawn(self._call_sync, self._target_kwargs, *args)


def _process_outcome(
    worker: BackgroundWorker, future: concurrent.futures.Future[Any]
) -> concurrent.futures.Future[bool]:
    """Map a process-pool target's outcome to "go on?" as ``_call_sync`` does."""
    outcome: concurrent.futures.Future[bool] = concurrent.futures.Future()

    def _done(done: concurrent.futures.Future[Any]) -> None:
        if done.cancelled():
            outcome.cancel()
            return
        exc = done.exception()
        if exc is None:
            outcome.set_result(done.result() is not False)
            return
        try:
            raise exc
        except Exception:
            outcome.set_result(worker._target_failed())

    future.add_done_callback(_done)
    return outcome
