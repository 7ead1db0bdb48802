"""Layer 1: what a pool is made of.

A :class:`Backend` builds executors for a manager: threads, processes,
interpreters, or a Dask cluster (:mod:`.dask`), and says what it can do
through capability flags. Process-log forwarding lives here too, since only
process pools need it, and :mod:`.compat` has leasepool's helpers
(``normalize_backend``, ``resolve_executor_cls``, ``build_executor``).
The manager asks a backend for pools; nothing in this layer knows about
leases. See ``doc/architecture.md``.
"""

from __future__ import annotations

from .base import (
    Backend,
    BackendSession,
    ExecutorBackend,
    PoolSpec,
    backend_availability,
    get_backend,
    register_backend,
)
from .compat import build_executor, normalize_backend, resolve_executor_cls
from .dask import DaskBackend, DaskWorkLostError
from .process_logging import ProcessLoggingConfig

__all__ = [
    "Backend",
    "BackendSession",
    "DaskBackend",
    "DaskWorkLostError",
    "ExecutorBackend",
    "PoolSpec",
    "ProcessLoggingConfig",
    "backend_availability",
    "build_executor",
    "get_backend",
    "normalize_backend",
    "register_backend",
    "resolve_executor_cls",
]
