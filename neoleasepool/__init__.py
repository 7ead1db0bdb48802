"""neoleasepool: leased executors, batching and supervision for async and sync code.

The public names are re-exported here; each lives in a small module of its
own (see ``DESIGN`` in the docs for the layers).
"""

from __future__ import annotations

import logging

from ._version import __version__
from .aloop import ALoop
from .backends import (
    Backend,
    BackendSession,
    ExecutorBackend,
    PoolSpec,
    backend_availability,
    register_backend,
)
from .dask_backend import DaskBackend, DaskWorkLostError
from .exceptions import (
    LeaseExpiredError,
    LeasePoolError,
    LeasePoolNotStartedError,
    LeaseUnavailableError,
    UnsupportedBackendError,
    WrongLoopError,
)
from .grinder import WorkGrinder
from .lease import ExecutorLease, LeaseState
from .manager import LeasedExecutorManager
from .process_logging import ProcessLoggingConfig
from .supervised import SupervisedLease, SupervisedLeaseManager, SupervisedWorkGrinder
from .supervisor import SupervisorInfo, TaskSupervisor, spawn, task_supervisor
from .workers import (
    BackgroundAsyncWorker,
    BackgroundEventWorker,
    BackgroundIntervalWorker,
    BackgroundQueueWorker,
    BackgroundWorker,
    background_worker,
)

logging.getLogger(__name__).addHandler(logging.NullHandler())
# The "dask" backend imports distributed only when a manager starts on it.
register_backend(DaskBackend.name, DaskBackend())

__all__ = [
    "ALoop",
    "Backend",
    "BackendSession",
    "BackgroundAsyncWorker",
    "BackgroundEventWorker",
    "BackgroundIntervalWorker",
    "BackgroundQueueWorker",
    "BackgroundWorker",
    "DaskBackend",
    "DaskWorkLostError",
    "ExecutorBackend",
    "ExecutorLease",
    "LeaseExpiredError",
    "LeasePoolError",
    "LeasePoolNotStartedError",
    "LeaseState",
    "LeaseUnavailableError",
    "LeasedExecutorManager",
    "PoolSpec",
    "ProcessLoggingConfig",
    "SupervisedLease",
    "SupervisedLeaseManager",
    "SupervisedWorkGrinder",
    "SupervisorInfo",
    "TaskSupervisor",
    "UnsupportedBackendError",
    "WorkGrinder",
    "WrongLoopError",
    "__version__",
    "backend_availability",
    "background_worker",
    "register_backend",
    "spawn",
    "task_supervisor",
]
