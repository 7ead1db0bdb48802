"""The facades' former module, kept so that imports of it keep working.

The facades live in :mod:`.lease`, :mod:`.manager` and :mod:`.grinder`;
import them from :mod:`neoleasepool.sync` (or :mod:`neoleasepool`).
"""

from __future__ import annotations

from .grinder import SupervisedWorkGrinder
from .lease import SupervisedLease
from .manager import SupervisedLeaseManager

__all__ = ["SupervisedLease", "SupervisedLeaseManager", "SupervisedWorkGrinder"]
