"""What the grinder needs of a lease manager and its leases.

:class:`~neoleasepool.LeasedExecutorManager` and
:class:`~neoleasepool.ExecutorLease` satisfy these; so may a user's own
manager (a test double, say).
"""

from __future__ import annotations

import concurrent.futures
from typing import Any, Protocol

__all__ = ["GrinderLease", "GrinderManager"]


class GrinderLease(Protocol):
    """A lease as the grinder uses it."""

    @property
    def executor(self) -> concurrent.futures.Executor:
        """Where the batch's calls go."""

    @property
    def active(self) -> bool:
        """Whether the lease still takes work."""

    @property
    def soft_expires_at(self) -> float:
        """``time.monotonic()`` at which the lease should be returned."""

    @property
    def lease_seconds(self) -> float:
        """How long the lease was granted for."""

    async def release(self) -> None:
        """Give the lease back."""


class GrinderManager(Protocol):
    """A lease manager as the grinder uses it."""

    async def acquire(self, *, lease_seconds: float, owner: str) -> Any:
        """A :class:`GrinderLease` for ``lease_seconds``."""
