"""Blocking facades over lease managers and grinders.

A synchronous script cannot ``await``.  These facades let it use a lease
manager and a grinder that live on an aloop through plain blocking calls,
each making at most one hop to the loop (through the aloop's portal), and
let the supervisor stop them in order: each facade is a *scheduler* (an
async ``loop()`` the supervisor runs, a regular ``stop(wait=...)`` it
calls).

* :mod:`.base`: what both facades share, and the wait for a result;
* :mod:`.lease`, :mod:`.manager`, :mod:`.grinder`: one facade each;
* :mod:`.factories`: build, start and register a facade.

Nothing here imports the supervisor: the factories see it through a
protocol, and the supervisor's ``create_*`` methods call them.  See
``doc/architecture.md``.
"""

from __future__ import annotations

from .grinder import SupervisedWorkGrinder
from .lease import SupervisedLease
from .manager import SupervisedLeaseManager

__all__ = ["SupervisedLease", "SupervisedLeaseManager", "SupervisedWorkGrinder"]
