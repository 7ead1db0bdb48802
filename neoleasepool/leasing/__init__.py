"""Lending pools out as expiring leases.

The :class:`LeasedExecutorManager` owns a bounded, adaptively sized set of
pools (built by a backend) and lends each one as an :class:`ExecutorLease`.
Async, bound to one loop, no threads of its own beyond the short-lived ones
that shut pools down.  Read bottom-up:

* :mod:`.sizing`: the sizing rule (units to a pool target);
* :mod:`.records`: what the manager keeps per pool and per lease;
* :mod:`.lease`: the lease and its executor proxy, as their holder sees them;
* :mod:`.reaper`: shutting retired pools down off the loop;
* :mod:`.waiters`: ``acquire()`` calls waiting for a pool;
* :mod:`.pools`: the pool set, the manager lock, and the lock table;
* :mod:`.desk`: granting leases and submitting their work (each lease has
  its own lock, so leases do not contend);
* :mod:`.checker`: expiry, revocation and sizing, on a background task;
* :mod:`.stopping`, :mod:`.stats`, :mod:`.options`: the stop, the
  snapshot, the checked arguments;
* :mod:`.manager`: the facade.

See ``doc/architecture.md``.
"""

from __future__ import annotations

from .lease import ExecutorLease, LeaseState
from .manager import LeasedExecutorManager

__all__ = ["ExecutorLease", "LeaseState", "LeasedExecutorManager"]
