"""Layer 2: lending pools out as expiring leases.

The :class:`LeasedExecutorManager` owns a bounded, adaptively sized set of
pools (built by a backend) and lends each one as an :class:`ExecutorLease`;
:mod:`.sizing` turns a unit count into a pool target and :mod:`.reaper`
shuts retired pools down off the loop. Async, bound to one loop, no threads
of its own. See ``doc/architecture.md``.
"""

from __future__ import annotations

from .lease import ExecutorLease, LeaseState
from .manager import LeasedExecutorManager

__all__ = ["ExecutorLease", "LeaseState", "LeasedExecutorManager"]
