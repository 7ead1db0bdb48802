"""``neotasker.supervisor``'s place: code that imports the supervisor from here keeps working.

The supervisor lives in :mod:`neoleasepool.supervision`.
"""

from __future__ import annotations

from .supervision.supervisor import SupervisorInfo, TaskSupervisor, spawn, task_supervisor

__all__ = ["SupervisorInfo", "TaskSupervisor", "spawn", "task_supervisor"]
