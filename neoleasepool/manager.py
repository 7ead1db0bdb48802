"""``leasepool.manager``'s place: code that imports the manager from here keeps working.

The manager lives in :mod:`neoleasepool.leasing`.
"""

from __future__ import annotations

from .leasing.lease import ExecutorLease, LeaseState
from .leasing.manager import LeasedExecutorManager

__all__ = ["ExecutorLease", "LeaseState", "LeasedExecutorManager"]
