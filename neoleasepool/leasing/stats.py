"""A manager's ``stats()`` snapshot and ``repr``, from any thread.

The snapshot is plain, JSON-serialisable data, taken under the manager
lock.  Lease entries read each lease's ``state`` and ``pending`` without
its lease lock: a display read (see the lock table in :mod:`.pools`), so
that ``stats()`` never waits for a submission in progress.
"""

from __future__ import annotations

import time

from ..types import Stats
from .pools import PoolSet

__all__ = ["manager_repr", "manager_stats"]


def manager_stats(pools: PoolSet, desired: int) -> Stats:
    """The manager's ``stats()``.

    Args:
        pools: The manager's pool set.
        desired: The sizing rule's answer, read before (it calls the user's
            ``size_provider``, which must not run under the lock).
    """
    now = time.monotonic()
    with pools.lock:
        leases = [
            {
                "lease_id": r.lease_id,
                "owner": r.owner,
                "state": r.state.value,
                "pending": len(r.pending),
                "seconds_until_soft_expiry": max(0.0, r.soft_expires_at - now),
                "seconds_until_hard_expiry": max(0.0, r.hard_expires_at - now),
            }
            for r in pools.leases.values()
        ]
        return {
            "backend": pools.backend_name,
            "state": pools.phase.value,
            "desired": desired,
            "target": pools.target,
            "min_pools": pools.min_pools,
            "max_pools": pools.max_pools,
            "available": len(pools.idle),
            "leased": len(pools.leases),
            "total": pools.owned_locked(),
            "waiting": len(pools.waiters),
            "workers_per_pool": pools.workers_per_pool,
            "retiring": pools.reaper.retiring if pools.reaper else 0,
            **pools.counts,
            "backend_details": pools.session.describe() if pools.session else {},
            "leases": leases,
        }


def manager_repr(pools: PoolSet) -> str:
    """``<LeasedExecutorManager thread running leased=1 idle=0 ...>``."""
    with pools.lock:
        return (
            f"<LeasedExecutorManager {pools.backend_name} {pools.phase.value} "
            f"leased={len(pools.leases)} idle={len(pools.idle)} "
            f"target={pools.target} max={pools.max_pools} "
            f"waiting={len(pools.waiters)}>"
        )
