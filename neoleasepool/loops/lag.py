"""How late an event loop runs what it was asked to run: its *lag*.

A loop that is blocked (a callback that computes, a blocking call made on
the loop by mistake) runs everything else late, and every blocking facade
on that loop feels slow. :class:`LagProbe` measures it the way an operator
would: a timer is set for a known moment, and when it fires the probe
notes how late it is. It then sets the next one, ``interval`` later, so
the probe costs one timer callback per interval.

Everything runs on the loop's thread; other threads only read ``last``,
the next due time and the window (a ``deque`` with a ``maxlen``, copied
in one step). A loop blocked *now* has not fired its probe yet: ``stats()``
then reports how overdue that probe is, so a stuck loop never looks idle.
Timers fire up to about a millisecond late on an idle loop (the selector
waits in whole milliseconds), so lags below that are noise.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

__all__ = ["LAG_INTERVAL_SECONDS", "LagProbe"]

#: Seconds between two probes.
LAG_INTERVAL_SECONDS = 0.5
#: Probes kept for the maximum: one minute's worth.
_WINDOW = int(60 / LAG_INTERVAL_SECONDS)


class LagProbe:
    """Measures a loop's lag every ``interval`` seconds while it runs.

    Args:
        interval: Seconds between probes.
    """

    def __init__(self, interval: float = LAG_INTERVAL_SECONDS) -> None:
        self.interval = interval
        #: The lag of the latest probe, in seconds (``None`` before the first).
        self.last: float | None = None
        self._recent: deque[float] = deque(maxlen=_WINDOW)
        # When the next probe is due, in time.monotonic() seconds: a probe
        # that has not fired yet shows a loop blocked *now* (its lag is at
        # least how overdue the probe is).
        self._due: float | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Set the first probe (on the loop's thread, or before it runs)."""
        self._recent.clear()
        self.last = None
        self._arm(loop)

    def stop(self) -> None:
        """The loop stopped: no probe is due any more (any thread)."""
        self._due = None

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        self._due = time.monotonic() + self.interval
        loop.call_later(self.interval, self._fire, loop)

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        due = self._due
        lag = 0.0 if due is None else max(0.0, time.monotonic() - due)
        self.last = lag
        self._recent.append(lag)
        self._arm(loop)

    def stats(self) -> dict[str, float | None]:
        """``lag_seconds`` (the latest probe's, or how overdue the next one
        is if that is more: a loop blocked right now) and
        ``lag_max_seconds`` (the most over the last minute)."""
        last, due, recent = self.last, self._due, list(self._recent)
        overdue = None if due is None else time.monotonic() - due
        if overdue is not None and overdue > 0 and (last is None or overdue > last):
            last = overdue
            recent.append(overdue)
        return {
            "lag_seconds": last,
            "lag_max_seconds": max(recent) if recent else None,
        }
