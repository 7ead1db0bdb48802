"""Layer 4: blocking facades over lease managers and grinders.

Each facade runs its async core on an aloop and answers plain threads
through the loop portal; the supervisor registers them as schedulers. See
``doc/architecture.md``.
"""

from __future__ import annotations

from .supervised import SupervisedLease, SupervisedLeaseManager, SupervisedWorkGrinder

__all__ = ["SupervisedLease", "SupervisedLeaseManager", "SupervisedWorkGrinder"]
