"""Leases: a time-limited, exclusive loan of one pool.

A lease is a promise with two deadlines.  At the *soft* expiry
(``leased_at + lease_seconds``) the holder should be done; at the *hard*
expiry (soft expiry plus the manager's grace period) the manager revokes the
lease: its executor proxy stops accepting work and the pool is shut down
(process workers are killed) and replaced.

Work is submitted through :attr:`ExecutorLease.executor`, a proxy that never
hands out the pool itself.

Capabilities: neither the proxy nor the lease holds the manager or the
pool.  Each holds only a :class:`LeaseTicket`, an empty object whose
identity is the capability; a private table of this module maps live
tickets to the manager's record.  So no path of instance attributes
(``__dict__``, slots, closures, bound ``__self__``) leads from a lease or
its executor to the raw executor or the manager's tables.  This is
hygiene, not a sandbox: Python code can always reach any object through
``gc.get_referents``, a module's globals or ``ctypes``.  Lease ids are
labels, not secrets: the only operation that takes an id is
``manager.release(lease_id)``; submitting work needs the lease object.

Releasing a lease whose submitted work is still running *drains* it: the
pool goes back to the manager only once that work has finished.
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .._util.futures import copy_outcome
from ..exceptions import LeaseExpiredError
from .records import LeaseRecord, LeaseState

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["ExecutorLease", "LeaseHost", "LeaseState", "LeasedExecutor"]

T = TypeVar("T")


class LeaseHost(Protocol):
    """What a lease needs from its manager (the manager's lease desk)."""

    #: ``run`` calls go out in the caller's ``contextvars`` context.
    carries_context: bool

    def submit(
        self,
        record: LeaseRecord,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        then: Callable[[Future[Any]], None] | None = None,
        limits: tuple[float | None, float | None] | None = None,
        name: str | None = None,
    ) -> Future[Any]:
        """Submit ``fn(*args, **kwargs)`` on the lease's pool; any thread."""
        ...

    async def release_record(self, record: LeaseRecord) -> None:
        """Release the lease; idempotent."""
        ...

    def owner_loop(self, method: str) -> asyncio.AbstractEventLoop:
        """The manager's loop, if ``method`` is called on it."""
        ...


class LeaseTicket:
    """The capability a lease and its executor proxy hold: nothing but an
    identity, looked up in this module's private table."""

    __slots__ = ("__weakref__",)

    def __repr__(self) -> str:
        return "<LeaseTicket>"


#: Live tickets -> (the manager's lease desk, record).  A ticket's entry goes with the last
#: lease object or proxy that holds it.
_grants: weakref.WeakKeyDictionary[LeaseTicket, tuple[LeaseHost, LeaseRecord]] = (
    weakref.WeakKeyDictionary()
)


def _issue(host: LeaseHost, record: LeaseRecord) -> LeaseTicket:
    ticket = LeaseTicket()
    _grants[ticket] = (host, record)
    return ticket


def _redeem(ticket: LeaseTicket) -> tuple[LeaseHost, LeaseRecord]:
    return _grants[ticket]


class LeasedExecutor(Executor):
    """The executor a lease hands out: submits to the leased pool while the
    lease is live; refuses ``shutdown()``.

    After the lease is released or revoked, :meth:`submit` raises
    :class:`~neoleasepool.exceptions.LeaseExpiredError`.
    """

    __slots__ = ("_ticket",)

    def __init__(self, ticket: LeaseTicket) -> None:
        self._ticket = ticket

    def __repr__(self) -> str:
        record = _redeem(self._ticket)[1]
        return f"<LeasedExecutor lease_id={record.lease_id} state={record.state.value}>"

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> Future[T]:
        """Schedule ``fn(*args, **kwargs)`` on the leased pool.

        Thread-safe.

        Raises:
            LeaseExpiredError: If the lease was released or revoked.
        """
        host, record = _redeem(self._ticket)
        return host.submit(record, fn, args, kwargs)

    def submit_limited(
        self,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        timeout: float | None = None,
        soft_timeout: float | None = None,
        name: str | None = None,
    ) -> Future[T]:
        """Schedule ``fn(*args, **kwargs)`` with time limits counted from
        its start, on a pool that enforces them (the process backend's);
        another pool runs it without them. Thread-safe.

        Raises:
            LeaseExpiredError: If the lease was released or revoked.
        """
        host, record = _redeem(self._ticket)
        return host.submit(record, fn, args, kwargs, limits=(timeout, soft_timeout), name=name)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Refuse: the pool belongs to the manager.

        Raises:
            RuntimeError: Always; release the lease instead.
        """
        raise RuntimeError(
            "Do not shut down a leased executor directly. Return the lease with "
            "`await lease.release()`. (or leave its 'async with' block; the "
            "manager decides what happens to the pool)"
        )


class ExecutorLease:
    """An exclusive, expiring loan of one pool from a
    :class:`~neoleasepool.manager.LeasedExecutorManager`.

    Use it as an async context manager, or call :meth:`release` yourself::

        async with await manager.acquire(owner="job-1") as lease:
            value = await lease.run(compute, 42)

    Attributes:
        lease_id: Unique id of the lease within its manager.
        owner: The diagnostic label given to ``acquire()``.
        lease_seconds: Time until soft expiry.
        grace_seconds: Extra time after soft expiry before revocation.
        leased_at: ``time.monotonic()`` when the lease was granted.
        executor: The leased pool's proxy executor.
    """

    __slots__ = ("_ticket", "executor")

    def __init__(self, host: LeaseHost, record: LeaseRecord) -> None:
        self._ticket = _issue(host, record)
        self.executor: Executor = LeasedExecutor(self._ticket)

    def __repr__(self) -> str:
        record = _redeem(self._ticket)[1]
        return (
            f"<ExecutorLease {record.lease_id} owner={record.owner!r} "
            f"state={record.state.value} pending={len(record.pending)}>"
        )

    @property
    def lease_id(self) -> str:
        return _redeem(self._ticket)[1].lease_id

    @property
    def owner(self) -> str | None:
        return _redeem(self._ticket)[1].owner

    @property
    def lease_seconds(self) -> float:
        return _redeem(self._ticket)[1].lease_seconds

    @property
    def grace_seconds(self) -> float:
        return _redeem(self._ticket)[1].grace_seconds

    @property
    def leased_at(self) -> float:
        return _redeem(self._ticket)[1].leased_at

    @property
    def soft_expires_at(self) -> float:
        """``time.monotonic()`` value at which the lease should be returned."""
        return _redeem(self._ticket)[1].soft_expires_at

    @property
    def hard_expires_at(self) -> float:
        """``time.monotonic()`` value at which the manager revokes the lease."""
        return _redeem(self._ticket)[1].hard_expires_at

    @property
    def state(self) -> LeaseState:
        """The lease's current :class:`LeaseState`."""
        return _redeem(self._ticket)[1].state

    @property
    def active(self) -> bool:
        """Whether the lease still accepts work."""
        return _redeem(self._ticket)[1].state is LeaseState.LIVE

    @property
    def carries_context(self) -> bool:
        """Whether :meth:`run` runs calls in the caller's ``contextvars``
        context (backends that run calls on this process's threads)."""
        return _redeem(self._ticket)[0].carries_context

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` on the leased pool and return its result.

        Must be awaited on the manager's loop.  Cancelling the await cancels
        the call if it has not started yet.  On a backend that runs calls in
        this process (threads), the call runs in a copy of the caller's
        ``contextvars`` context, as :func:`asyncio.to_thread` does, so
        trace context and other context variables follow it.

        Raises:
            LeaseExpiredError: If the lease was released or revoked.
            WrongLoopError: If awaited on another loop.
        """
        host, record = _redeem(self._ticket)
        loop = host.owner_loop("ExecutorLease.run")
        result: asyncio.Future[T] = loop.create_future()

        def _hand_back(done: Future[Any]) -> None:
            try:
                loop.call_soon_threadsafe(_settle_run, done, result, record)
            except RuntimeError:
                pass  # the loop is closed: nobody awaits ``result`` any more

        if host.carries_context:
            fn, args = contextvars.copy_context().run, (fn, *args)
        # One done-callback does the manager's bookkeeping and the hand-back.
        future = host.submit(record, fn, args, kwargs, _hand_back)
        try:
            return await result
        except asyncio.CancelledError:
            future.cancel()  # a call that has not started never runs
            raise

    async def release(self) -> None:
        """Return the pool to the manager; idempotent.

        Work already submitted keeps running: the pool is handed back (or
        shut down, when above the manager's target) once it has finished.
        """
        host, record = _redeem(self._ticket)
        await host.release_record(record)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.release()


def _settle_run(done: Future[Any], result: asyncio.Future[Any], record: LeaseRecord) -> None:
    """On the loop: pass a call's outcome to the awaiting ``run()``.

    A call cancelled by the manager (the lease was revoked, or the manager
    stopped without draining) is a :class:`LeaseExpiredError` for the
    awaiter, not a cancellation of its own task.
    """
    if done.cancelled() and not result.done():
        result.set_exception(
            LeaseExpiredError(
                f"Executor lease is no longer active (lease {record.lease_id} ended, "
                f"{record.state.value}, before the call ran)"
            )
        )
        return
    copy_outcome(done, result)
