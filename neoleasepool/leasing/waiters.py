"""Acquirers waiting for a pool, first come, first served.

When every pool is leased, ``acquire()`` queues an asyncio future here.  A
pool that comes back is handed straight to the oldest waiter that is still
waiting; until that waiter's task resumes, the pool is *in transit*: owned,
neither idle nor leased, and counted against ``max_pools``.  A waiter
cancelled just as a pool reached it gives the pool back.

Everything here runs on the manager's loop; the queue and the in-transit
count are guarded by the manager lock (see :mod:`.pools`).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable

from .records import Pool

__all__ = ["WaiterQueue"]


class WaiterQueue:
    """The queue of ``acquire()`` calls waiting for a pool.

    Args:
        lock: The manager lock, which guards the queue and
            :attr:`in_transit`.
    """

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self._queue: deque[asyncio.Future[Pool]] = deque()
        #: Pools handed to a waiter whose ``acquire()`` has not resumed yet.
        self.in_transit = 0

    def __len__(self) -> int:
        return len(self._queue)

    def __repr__(self) -> str:
        return f"<WaiterQueue waiting={len(self._queue)} in_transit={self.in_transit}>"

    def waiting_locked(self) -> bool:
        """Whether someone still waits (dropping waiters that gave up)."""
        while self._queue and self._queue[0].done():
            self._queue.popleft()
        return bool(self._queue)

    def hand_over_locked(self, pool: Pool) -> bool:
        """Give ``pool`` to the oldest waiter still waiting.

        Returns:
            Whether a waiter took it.
        """
        while self._queue:
            waiter = self._queue.popleft()
            if not waiter.done():
                waiter.set_result(pool)
                self.in_transit += 1
                return True
        return False

    def fail_all(self, exc: BaseException) -> None:
        """Wake every waiter with ``exc`` (the manager is stopping or broke)."""
        with self._lock:
            self.fail_all_locked(exc)

    def fail_all_locked(self, exc: BaseException) -> None:
        """:meth:`fail_all` with the manager lock held (on the loop: the
        waiters wake once the loop runs their callbacks)."""
        waiters, self._queue = self._queue, deque()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(exc)

    async def wait(
        self,
        loop: asyncio.AbstractEventLoop,
        timeout: float | None,
        give_back_locked: Callable[[Pool], None],
    ) -> Pool:
        """Wait for a pool.

        Args:
            loop: The manager's loop (the running one).
            timeout: Most seconds to wait, or ``None``.
            give_back_locked: Takes back a pool that reached this waiter
                after its task was cancelled; called with the manager lock
                held.

        Returns:
            The pool, no longer in transit.

        Raises:
            TimeoutError: If ``timeout`` passes first.
            LeasePoolNotStartedError: If the manager stops meanwhile.
        """
        waiter: asyncio.Future[Pool] = loop.create_future()
        with self._lock:
            self._queue.append(waiter)
        timer = None
        if timeout is not None:
            timer = loop.call_later(timeout, _expire, waiter, timeout)
        try:
            pool = await waiter
        except BaseException:
            self._forget(waiter)
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # A pool arrived just as this task was cancelled: give it back.
                with self._lock:
                    self.in_transit -= 1
                    give_back_locked(waiter.result())
            raise
        finally:
            if timer is not None:
                timer.cancel()
        with self._lock:
            self.in_transit -= 1
        return pool

    def _forget(self, waiter: asyncio.Future[Pool]) -> None:
        with self._lock:
            if waiter in self._queue:
                self._queue.remove(waiter)


def _expire(waiter: asyncio.Future[Pool], timeout: float) -> None:
    if not waiter.done():
        waiter.set_exception(
            TimeoutError(
                f"Timed out waiting for an executor after {timeout}s "
                "(no pool became free in time)"
            )
        )
