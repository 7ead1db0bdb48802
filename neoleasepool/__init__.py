"""neoleasepool: leased executors, batching and supervision for async and sync code.

The public names are re-exported here; each lives in a small module of its
own (see ``DESIGN`` in the docs for the layers).
"""

from __future__ import annotations

import logging

from ._version import __version__
from .backends import (
    Backend,
    BackendSession,
    ExecutorBackend,
    PoolSpec,
    backend_availability,
    register_backend,
)
from .exceptions import (
    LeaseExpiredError,
    LeasePoolError,
    LeasePoolNotStartedError,
    LeaseUnavailableError,
    UnsupportedBackendError,
    WrongLoopError,
)
from .lease import ExecutorLease, LeaseState
from .manager import LeasedExecutorManager
from .process_logging import ProcessLoggingConfig

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "Backend",
    "BackendSession",
    "ExecutorBackend",
    "ExecutorLease",
    "LeaseState",
    "LeasedExecutorManager",
    "PoolSpec",
    "ProcessLoggingConfig",
    "backend_availability",
    "register_backend",
    "LeaseExpiredError",
    "LeasePoolError",
    "LeasePoolNotStartedError",
    "LeaseUnavailableError",
    "UnsupportedBackendError",
    "WrongLoopError",
    "__version__",
]
