"""Stopping a manager: end the leases, drain, retire every pool, join.

The steps, on the manager's loop:

1. waiters in ``acquire()`` fail with ``LeasePoolNotStartedError``;
2. every lease stops taking work, before the first ``await``, so that
   nothing is accepted once the manager says it is stopping (each under its
   lease lock: a submission in progress finishes first and is counted);
3. the checker task ends;
4. with ``drain=True``, the work still pending is awaited (up to the
   timeout); what is left then is cancelled, and process workers killed;
5. every pool still owned is retired, and a helper thread joins all
   retirements (including earlier ones, such as a revoked lease's pool),
   never the loop thread, which a thread-backend call might be waiting on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import Future
from typing import Any

from .._util.threads import run_in_thread
from ..exceptions import LeasePoolNotStartedError
from .checker import Checker
from .pools import PoolSet
from .reaper import PoolReaper

__all__ = ["shut_down"]

#: After a bounded stop kills process workers, how long it waits for their
#: pools to finish shutting down.
KILL_GRACE_SECONDS = 5.0


async def shut_down(
    pools: PoolSet, checker: Checker, *, drain: bool, timeout: float | None
) -> None:
    """Stop everything ``pools`` owns (the manager is ``STOPPING``).

    Args:
        pools: The manager's pool set.
        checker: The manager's checker.
        drain: Wait for submitted work first.
        timeout: Most seconds to wait for work to end, or ``None``.
    """
    pools.waiters.fail_all(LeasePoolNotStartedError(
        "LeasedExecutorManager is not started (it stopped while this acquire() waited)"
    ))
    pending = pools.end_all_leases()
    await checker.stop()
    deadline = None if timeout is None else time.monotonic() + timeout
    timed_out = False
    if drain and pending:
        timed_out = await _drain(pending, timeout, pools.logger)
    pools.retire_all(terminate=timed_out)
    reaper, session = pools.reaper, pools.session
    assert reaper is not None and session is not None
    # A bounded stop stays bounded, also when a pool retired earlier (a
    # revoked lease's) is still stuck in a call that threads cannot kill.
    join_timeout = None if deadline is None else max(0.0, deadline - time.monotonic())

    def _join_and_close() -> None:
        _join(reaper, join_timeout, pools.logger)
        session.close()

    await run_in_thread(_join_and_close, name=f"{pools.name_prefix}-stop")
    pools.session = pools.reaper = None


async def _drain(pending: list[Future[Any]], timeout: float | None, logger: logging.Logger) -> bool:
    """Wait for ``pending`` work; cancel what is left after ``timeout``.

    Returns:
        Whether the timeout passed with work still running.
    """
    loop = asyncio.get_running_loop()
    waits = [asyncio.wrap_future(f, loop=loop) for f in pending]
    done, not_done = await asyncio.wait(waits, timeout=timeout)
    # The wrappers are ours: retrieve what they hold, or asyncio logs
    # "Future exception was never retrieved" (a crash, a killed pool).
    for wrapper in done:
        if not wrapper.cancelled():
            wrapper.exception()
    # Cancel the calls themselves, now, before any pool is killed (the
    # wrappers would pass the cancel on only at the loop's next turn, racing
    # the kill): a call not started never runs, and on a pool that can stop
    # a running call (ours) the call ends cancelled; on one that cannot,
    # the kill then fails it as broken.
    for future in pending:
        future.cancel()
    for wrapper in not_done:
        wrapper.cancel()
    if not_done:
        logger.warning(
            "manager stop timed out with %s call(s) running; cancelling "
            "them and killing process workers", len(not_done)
        )
    return bool(not_done)


def _join(reaper: PoolReaper, timeout: float | None, logger: logging.Logger) -> None:
    """In a helper thread: join every retirement, killing process workers
    still running calls if ``timeout`` passes first."""
    if reaper.join(timeout):
        return
    reaper.terminate_remaining()
    if not reaper.join(KILL_GRACE_SECONDS):
        logger.warning(
            "manager stop: %s pool(s) still shutting down after the "
            "timeout (threads cannot be killed); not waiting for them",
            reaper.retiring,
        )
