"""A lease for synchronous code.

The leased pool's executor takes work from any thread, so ``run()`` and
``executor.submit()`` hand work straight to it from the calling thread,
with no hop to the aloop; only ``release()`` makes one.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
from collections.abc import Callable
from typing import Any, TypeVar

from .._util.validation import check_optional_timeout
from ..exceptions import LeaseExpiredError
from ..leasing.lease import ExecutorLease
from .base import FacadeBase, refuse_loop_thread, wait_result

__all__ = ["SupervisedLease"]

T = TypeVar("T")


class SupervisedLease:
    """A lease for synchronous code; use it in a ``with`` block.

    ``run()`` and ``executor.submit()`` hand work straight to the leased
    pool from the calling thread; only ``release()`` hops to the aloop.

    Args:
        lease: The async core's lease.
        owner: The facade of the manager that granted it.
    """

    def __init__(self, lease: ExecutorLease, owner: FacadeBase) -> None:
        self.lease = lease
        self._owner = owner

    def __repr__(self) -> str:
        return f"<SupervisedLease {self.lease!r}>"

    @property
    def executor(self) -> concurrent.futures.Executor:
        """The leased pool's executor proxy (thread-safe)."""
        return self.lease.executor

    @property
    def lease_id(self) -> str:
        """The lease's id."""
        return self.lease.lease_id

    @property
    def owner(self) -> str | None:
        """The owner label given at acquire time."""
        return self.lease.owner

    @property
    def active(self) -> bool:
        """Whether the lease is still held."""
        return self.lease.active

    @property
    def soft_expires_at(self) -> float:
        """When (``time.monotonic``) the holder should be done."""
        return self.lease.soft_expires_at

    @property
    def hard_expires_at(self) -> float:
        """When (``time.monotonic``) the manager revokes the lease and replaces its pool."""
        return self.lease.hard_expires_at

    def run(
        self, fn: Callable[..., T], /, *args: Any, timeout: float | None = None, **kwargs: Any
    ) -> T:
        """Run ``fn(*args, **kwargs)`` on the leased pool and block for it.

        ``timeout`` is reserved for this call (wrap ``fn`` with
        ``functools.partial`` to pass a keyword named ``timeout``). On
        threads, the call runs in a copy of the caller's ``contextvars``
        context, as :meth:`ExecutorLease.run` does.

        Raises:
            LeaseExpiredError: If the lease was released or revoked.
            TimeoutError: If no result came within ``timeout`` (the call is
                cancelled if it has not started).
            WrongLoopError: If called on the manager's aloop thread.
        """
        refuse_loop_thread(self._owner.aloop, "SupervisedLease.run")
        seconds = check_optional_timeout("timeout", timeout)
        if self.lease.carries_context:
            fn, args = contextvars.copy_context().run, (fn, *args)
        try:
            return wait_result(self.lease.executor.submit(fn, *args, **kwargs), seconds)
        except concurrent.futures.CancelledError:
            if self.lease.active:
                raise
            # Cancelled by the manager (revoked, or stopped without draining).
            raise LeaseExpiredError(
                f"Executor lease is no longer active (lease {self.lease.lease_id} "
                "ended before the call ran)"
            ) from None

    def release(self, timeout: float | None = None) -> None:
        """Give the pool back (idempotent); submitted work keeps running."""
        if not self.lease.active:
            return
        refuse_loop_thread(self._owner.aloop, "SupervisedLease.release")
        self._owner.aloop.call_with_timeout(timeout, self.lease.release)

    def __enter__(self) -> SupervisedLease:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
