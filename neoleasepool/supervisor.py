"""``neotasker.supervisor``'s place: code that imports the supervisor from here keeps working.

The supervisor lives in :mod:`neoleasepool.supervision`.
"""

from __future__ import annotations

from .supervision.job_scheduler import AsyncJobScheduler
from .supervision.jobs import AsyncJob
from .supervision.supervisor import (
    SupervisorInfo,
    TaskSupervisor,
    spawn,
    spawn_ajob,
    task_supervisor,
)

__all__ = [
    "AsyncJob",
    "AsyncJobScheduler",
    "SupervisorInfo",
    "TaskSupervisor",
    "spawn",
    "spawn_ajob",
    "task_supervisor",
]
