"""What the grinder needs of a lease manager and its leases, read in one place.

:class:`~neoleasepool.LeasedExecutorManager` and
:class:`~neoleasepool.ExecutorLease` satisfy these protocols; so does a
user's own manager (a test double, say), as with leasepool's grinder: all a
manager needs is ``await acquire(owner=..., lease_seconds=...)`` returning a
lease with an ``executor`` and an ``async release()``. What a lease or a
manager may also offer (expiry times, ``active``, its worker count, its
backend, its loop) is used when present; :class:`LeaseView` and
:class:`ManagerFacts` are the only places that look for it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import time
from typing import Any, Protocol, runtime_checkable

__all__ = ["GrinderLease", "GrinderManager", "LeaseView", "ManagerFacts"]


@runtime_checkable
class GrinderLease(Protocol):
    """A lease as the grinder needs it."""

    @property
    def executor(self) -> concurrent.futures.Executor:
        """Where the batch's calls go."""

    async def release(self) -> None:
        """Give the lease back."""


class GrinderManager(Protocol):
    """A lease manager as the grinder needs it."""

    async def acquire(self, *, lease_seconds: float, owner: str) -> Any:
        """A :class:`GrinderLease` granted for ``lease_seconds``."""


@runtime_checkable
class _Expiring(Protocol):
    @property
    def soft_expires_at(self) -> float: ...

    @property
    def lease_seconds(self) -> float: ...


@runtime_checkable
class _Revocable(Protocol):
    @property
    def active(self) -> bool: ...


class LeaseView:
    """One granted lease, with what the grinder asks of it.

    Args:
        lease: What the manager's ``acquire`` returned.
        lease_seconds: What the grinder asked for (used when the lease does
            not say when it expires).

    Raises:
        TypeError: If ``lease`` has no ``executor`` or no ``release()``.
    """

    __slots__ = ("_active", "executor", "label", "lease", "released", "reuse_until")

    def __init__(self, lease: Any, lease_seconds: float) -> None:
        if not isinstance(lease, GrinderLease) or not isinstance(
            lease.executor, concurrent.futures.Executor
        ):
            raise TypeError(
                "the manager's acquire() must return a lease with an `executor` "
                f"(a concurrent.futures.Executor) and an async `release()`, got {lease!r}"
            )
        self.lease = lease
        self.released = False
        self.executor: concurrent.futures.Executor = lease.executor
        self._active: _Revocable | None = lease if isinstance(lease, _Revocable) else None
        self.label = str(getattr(lease, "lease_id", "") or repr(lease))
        # The lease takes new batches during the first half of its time.
        if isinstance(lease, _Expiring):
            self.reuse_until = lease.soft_expires_at - lease.lease_seconds / 2
        else:
            self.reuse_until = time.monotonic() + lease_seconds / 2
        if math.isnan(self.reuse_until):
            self.reuse_until = time.monotonic()

    @property
    def active(self) -> bool:
        """Whether the lease still takes work (``True`` if it cannot say)."""
        return True if self._active is None else bool(self._active.active)

    async def release(self) -> None:
        """Give the lease back, once."""
        if not self.released:
            self.released = True
            await self.lease.release()


class ManagerFacts:
    """What the grinder reads of its manager, with defaults for a stand-in."""

    __slots__ = ("backend", "loop", "pools", "started", "workers")

    def __init__(self, manager: object) -> None:
        workers = getattr(manager, "workers_per_pool", 1)
        self.workers: int = workers if isinstance(workers, int) and workers > 0 else 1
        pools = getattr(manager, "max_pools", 1)
        self.pools: int = pools if isinstance(pools, int) and pools > 0 else 1
        self.backend: object = getattr(manager, "backend", None)
        self.started: bool = bool(getattr(manager, "started", True))
        loop = getattr(manager, "loop", None)
        self.loop: asyncio.AbstractEventLoop | None = (
            loop if isinstance(loop, asyncio.AbstractEventLoop) else None
        )
