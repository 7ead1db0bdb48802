"""Layer 1: what a pool is made of.

A :class:`Backend` builds executors for a manager: threads, processes,
interpreters, or a Dask cluster (:mod:`.dask`), and says what it can do
through capability flags. Process-log forwarding lives here too, since only
process pools need it. The manager asks a backend for pools; nothing in this
layer knows about leases. See ``doc/architecture.md``.
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
    "get_backend",
    "register_backend",
]
