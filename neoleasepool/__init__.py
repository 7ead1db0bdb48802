"""neoleasepool: leased executors, batching and supervision for async and sync code.

The public names are re-exported here; each lives in a small module of its
own (``doc/architecture.md`` draws the layers).
"""

from __future__ import annotations

import logging

from ._util.current import ItemToken, current_item
from ._util.limits import TimeLimited, time_limited
from ._version import __version__
from .backends.base import (
    Backend,
    BackendSession,
    ExecutorBackend,
    PoolSpec,
    backend_availability,
    register_backend,
)
from .backends.dask import DaskBackend, DaskWorkLostError
from .backends.process_logging import ProcessLoggingConfig
from .backends.procpool import WorkerPool
from .exceptions import (
    ItemTimeoutError,
    LeaseExpiredError,
    LeasePoolError,
    LeasePoolNotStartedError,
    LeaseUnavailableError,
    SoftTimeLimitExceeded,
    UnsupportedBackendError,
    WorkerDiedError,
    WrongLoopError,
)
from .grinder.facade import WorkGrinder
from .leasing.lease import ExecutorLease, LeaseState
from .leasing.manager import LeasedExecutorManager
from .loops.aloop import ALoop
from .observe import install as _install_observe
from .supervision.job_scheduler import AsyncJobScheduler
from .supervision.jobs import AsyncJob
from .supervision.supervisor import (
    SupervisorInfo,
    TaskSupervisor,
    spawn,
    spawn_ajob,
    task_supervisor,
)
from .supervision.workers import (
    BackgroundAsyncWorker,
    BackgroundEventWorker,
    BackgroundIntervalWorker,
    BackgroundQueueWorker,
    BackgroundWorker,
    background_worker,
)
from .sync import SupervisedLease, SupervisedLeaseManager, SupervisedWorkGrinder

logging.getLogger(__name__).addHandler(logging.NullHandler())
# The "dask" backend imports distributed only when a manager starts on it.
register_backend(DaskBackend.name, DaskBackend())
# Supervisors find their metrics and status page through this (supervision/observer.py).
_install_observe()

__all__ = [
    "ALoop",
    "AsyncJob",
    "AsyncJobScheduler",
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
    "ItemTimeoutError",
    "ItemToken",
    "LeaseExpiredError",
    "LeasePoolError",
    "LeasePoolNotStartedError",
    "LeaseState",
    "LeaseUnavailableError",
    "LeasedExecutorManager",
    "PoolSpec",
    "ProcessLoggingConfig",
    "SoftTimeLimitExceeded",
    "SupervisedLease",
    "SupervisedLeaseManager",
    "SupervisedWorkGrinder",
    "SupervisorInfo",
    "TaskSupervisor",
    "TimeLimited",
    "UnsupportedBackendError",
    "WorkGrinder",
    "WorkerDiedError",
    "WorkerPool",
    "WrongLoopError",
    "__version__",
    "backend_availability",
    "background_worker",
    "current_item",
    "register_backend",
    "spawn",
    "spawn_ajob",
    "task_supervisor",
    "time_limited",
]
