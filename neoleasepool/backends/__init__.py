"""Layer 1: what a pool is made of.

A :class:`Backend` builds executors for a manager: threads, processes,
interpreters, or a Dask cluster (:mod:`.dask`), and says what it can do
through capability flags. The process backend runs our own pool
(:mod:`.procpool`: a process and a pipe per worker, time limits,
recycling); ``stdlib-process`` keeps ``ProcessPoolExecutor``
(:mod:`.process`). Process-log forwarding lives here too, since only
process pools need it, and :mod:`.compat` has leasepool's helpers
(``normalize_backend``, ``resolve_executor_cls``, ``build_executor``).
The manager asks a backend for pools; nothing in this layer knows about
leases. See ``doc/architecture.md``.
"""

from __future__ import annotations

from .base import (
    INTERPRETER_BACKEND,
    THREAD_BACKEND,
    Backend,
    BackendSession,
    ExecutorBackend,
    PoolSpec,
    StoppingExecutor,
    backend_availability,
    get_backend,
    register_backend,
)
from .compat import build_executor, normalize_backend, resolve_executor_cls
from .dask import DaskBackend, DaskWorkLostError
from .process import ProcessBackend, StdlibProcessBackend
from .process_logging import ProcessLoggingConfig
from .procpool import WorkerPool

__all__ = [
    "Backend",
    "BackendSession",
    "DaskBackend",
    "DaskWorkLostError",
    "ExecutorBackend",
    "PoolSpec",
    "ProcessLoggingConfig",
    "StoppingExecutor",
    "WorkerPool",
    "backend_availability",
    "build_executor",
    "get_backend",
    "normalize_backend",
    "register_backend",
    "resolve_executor_cls",
]

# The built-ins, in the order error messages list them (leasepool's first).
for _builtin in (THREAD_BACKEND, ProcessBackend(), INTERPRETER_BACKEND, StdlibProcessBackend()):
    register_backend(_builtin.name, _builtin)
