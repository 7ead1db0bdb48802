"""The checker: the manager's one background task, for expiry and sizing.

Each pass, on the manager's loop:

1. reads the sizing rule's target (:mod:`.sizing`, which calls the user's
   ``size_provider``, outside any lock);
2. *revokes* every lease past its hard expiry: the lease stops accepting
   work and its pool is retired with its running work killed (process
   workers; threads cannot be killed) and its queued work cancelled, so
   that a ``run()`` still waiting for it fails with ``LeaseExpiredError``;
3. serves waiters, builds pools up to the target, and retires surplus idle
   pools once they have been idle for ``surplus_idle_seconds``.

The task then sleeps until the next hard expiry, the next surplus pool's
time, or ``check_interval``, whichever comes first.  It is woken early by
:meth:`Checker.notify` (``notify_scale_changed()``, any thread) and by
:meth:`Checker.wake_by` (a shorter lease granted, a surplus pool back; loop
only).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from .pools import PoolSet
from .records import LeaseState

__all__ = ["Checker", "revoke_expired_locked"]


class Checker:
    """Runs the check passes of one manager.

    Args:
        pools: The manager's pool set.
        desired: Returns the sizing rule's target right now.
        interval: Longest time between two passes, in seconds.
        name: The task's name.
        broke: Called on the loop when a pass fails (a bug): the task then
            ends, and the manager breaks (nothing would revoke or serve).
    """

    def __init__(
        self,
        pools: PoolSet,
        desired: Callable[[], int],
        interval: float,
        name: str,
        broke: Callable[[BaseException], None],
    ) -> None:
        self._pools = pools
        self._broke = broke
        self._desired = desired
        self._interval = interval
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._due = 0.0

    def __repr__(self) -> str:
        state = "running" if self._task is not None else "idle"
        return f"<Checker {self._name} {state}>"

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the task on ``loop`` (the running loop)."""
        self._loop = loop
        self._wakeup = asyncio.Event()
        self._due = 0.0
        self._task = loop.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        """Cancel the task and wait for it to end."""
        task, self._task = self._task, None
        self._wakeup = None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def wake_by(self, when: float) -> None:
        """Make sure a pass runs by ``when`` (``time.monotonic()``); loop only."""
        if self._wakeup is not None and when < self._due:
            self._wakeup.set()

    def notify(self) -> None:
        """Run a pass soon; safe from any thread, a no-op when stopped."""
        loop, wakeup = self._loop, self._wakeup
        if loop is None or wakeup is None or self._task is None:
            return
        try:
            loop.call_soon_threadsafe(wakeup.set)
        except RuntimeError:
            pass  # the loop is closed: the manager has stopped

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        wakeup = self._wakeup
        assert wakeup is not None
        while True:
            wakeup.clear()
            try:
                delay = self._check()
            except Exception as exc:
                self._broke(exc)
                return
            self._due = time.monotonic() + delay
            timer = loop.call_later(delay, wakeup.set)
            try:
                await wakeup.wait()
            finally:
                timer.cancel()

    def _check(self) -> float:
        """One pass; returns the seconds until the next one is due."""
        target = self._desired()
        now = time.monotonic()
        pools = self._pools
        with pools.lock:
            pools.target = target
            revoke_expired_locked(pools, now)
            next_retire = pools.fit_to_target_locked(now)
            expiries = [r.hard_expires_at for r in pools.leases.values()]
        if next_retire is not None:
            expiries.append(next_retire)
        delay = self._interval
        if expiries:
            delay = min(delay, max(0.0, min(expiries) - now))
        return delay


def revoke_expired_locked(pools: PoolSet, now: float) -> None:
    """Revoke every lease of ``pools`` past its hard expiry at ``now``.

    Takes each expired lease's lock (after the manager lock, as the lock
    order says): a submission in progress on it finishes first, and its work
    is then cancelled or killed with the rest.
    """
    expired = [r for r in pools.leases.values() if r.hard_expires_at <= now]
    for record in expired:
        del pools.leases[record.lease_id]
        with record.lock:
            record.state = LeaseState.DONE
        record.pool.lease = None
        pools.counts["leases_revoked"] += 1
        pools.retire_locked(record.pool, terminate=True, cancel_futures=True)
        pools.logger.warning(
            "lease revoked after hard expiry lease_id=%s owner=%s "
            "lease_seconds=%s grace_seconds=%s",
            record.lease_id, record.owner, record.lease_seconds, record.grace_seconds,
        )
