"""The process backends: our own pool (``process``) and the stdlib's
(``stdlib-process``).

``process`` builds a :class:`~.procpool.WorkerPool`: one OS process per
worker with its own pipe, so that a worker that dies, overstays its time
limit or is cancelled fails only its own call and is replaced, and workers
are recycled between calls (``max_tasks_per_child``,
``max_memory_per_child``, ``max_child_age_seconds``). It enforces time
limits and stops cancelled running calls (``stops_calls``).

``stdlib-process`` builds ``concurrent.futures.ProcessPoolExecutor``, for
those who want it: one dead worker breaks that whole pool (the manager
replaces it), a time limit cannot stop its call, and its
``max_tasks_per_child`` hangs on CPython 3.11 to 3.13 when ``1 < N <
items / workers`` (gh-115634; ``doc/limits.md``).

Both forward worker log records when asked (``process_logging.py``) and
default to a start method that does not fork a threaded parent.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import weakref
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any

from ..exceptions import WorkerDiedError
from .base import Backend, BackendSession, PoolSpec, check_pool_options
from .process_logging import ProcessLogForwarder, ProcessLoggingConfig, safe_mp_context
from .procpool import WorkerPool

__all__ = ["ProcessBackend", "StdlibProcessBackend", "is_process_pool"]


class _ProcessSession(BackendSession):
    """A manager's process pools, their start method and log forwarding."""

    def __init__(
        self,
        own_pool: bool,
        options: Mapping[str, Any],
        logger: logging.Logger,
        process_logging: ProcessLoggingConfig | None,
    ) -> None:
        self._own_pool = own_pool
        self._options = dict(options)
        if self._options.get("mp_context") is None:
            self._options["mp_context"] = safe_mp_context()
        self._forwarder: ProcessLogForwarder | None = None
        if process_logging is not None and process_logging.enabled:
            self._forwarder = ProcessLogForwarder(
                process_logging, logger, self._options["mp_context"]
            )
            self._options = self._forwarder.wrap_initializer(self._options)
        self._lock = threading.Lock()
        # Workers replaced, by reason: of the pools shut down, and the live ones.
        self._restarted: Counter[str] = Counter()
        self._live: weakref.WeakSet[WorkerPool] = weakref.WeakSet()

    def create(self, spec: PoolSpec) -> Executor:
        if self._own_pool:
            pool = WorkerPool(spec.workers, name=spec.name, **self._options)
            with self._lock:
                self._live.add(pool)
            return pool
        return ProcessPoolExecutor(max_workers=spec.workers, **self._options)

    def shutdown(self, executor: Executor, *, cancel_futures: bool) -> None:
        super().shutdown(executor, cancel_futures=cancel_futures)
        if isinstance(executor, WorkerPool):
            with self._lock:
                if executor in self._live:
                    self._live.discard(executor)
                    self._restarted.update(executor.stats()["restarts"])

    def is_broken(self, exc: BaseException) -> bool:
        # One dead worker of our pool fails its own call only: the pool goes on.
        return isinstance(exc, concurrent.futures.BrokenExecutor) and not isinstance(
            exc, WorkerDiedError
        )

    def terminate(self, executor: Executor) -> None:
        with self._lock:
            if isinstance(executor, WorkerPool):
                # Queued calls are cancelled in the same step: none may
                # reach a worker the kill frees.
                executor.kill_workers(cancel_pending=True)
            else:
                _kill_stdlib_workers(executor)

    def close(self) -> None:
        if self._forwarder is not None:
            self._forwarder.close()
            self._forwarder = None

    def describe(self) -> dict[str, Any]:
        details: dict[str, Any] = {
            "pool": "WorkerPool" if self._own_pool else "ProcessPoolExecutor",
            "start_method": self._options["mp_context"].get_start_method(),
            "forwarding_logs": self._forwarder is not None,
        }
        if self._own_pool:
            with self._lock:
                restarted = Counter(self._restarted)
                for pool in list(self._live):
                    restarted.update(pool.stats()["restarts"])
            details["workers_restarted"] = dict(restarted)  # by reason (doc/limits.md)
        return details


def is_process_pool(executor: object) -> bool:
    """Whether ``executor`` runs its calls in other processes (ours or the
    stdlib's pool): they get no objects of this process, such as a worker."""
    return isinstance(executor, (WorkerPool, ProcessPoolExecutor))


def _kill_stdlib_workers(executor: Executor) -> None:
    """Kill a ``ProcessPoolExecutor``'s workers (which breaks it)."""
    terminate_workers = getattr(executor, "terminate_workers", None)
    if terminate_workers is not None:  # Python 3.14+
        terminate_workers()
        return
    processes = getattr(executor, "_processes", None) or {}
    for process in list(processes.values()):
        if process.is_alive():
            process.kill()


class ProcessBackend(Backend):
    """``process``: our own :class:`~.procpool.WorkerPool` per pool."""

    name = "process"
    pickles_calls = True
    stops_calls = True

    def check_options(self, options: Mapping[str, Any]) -> None:
        if "name" in options:
            raise ValueError(
                "the process backend names its pools itself (<name_prefix>-<n>): "
                "drop the 'name' executor option"
            )
        check_pool_options(WorkerPool, options, self.name)
        WorkerPool.check_options(**options)

    def open(
        self,
        options: Mapping[str, Any],
        *,
        logger: logging.Logger,
        process_logging: ProcessLoggingConfig | None,
    ) -> BackendSession:
        return _ProcessSession(True, options, logger, process_logging)


class StdlibProcessBackend(Backend):
    """``stdlib-process``: ``concurrent.futures.ProcessPoolExecutor`` per pool."""

    name = "stdlib-process"
    pickles_calls = True

    def check_options(self, options: Mapping[str, Any]) -> None:
        check_pool_options(ProcessPoolExecutor, options, self.name)

    def open(
        self,
        options: Mapping[str, Any],
        *,
        logger: logging.Logger,
        process_logging: ProcessLoggingConfig | None,
    ) -> BackendSession:
        return _ProcessSession(False, options, logger, process_logging)
