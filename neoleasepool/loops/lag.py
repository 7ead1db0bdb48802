"""How late an event loop runs what it was asked to run: its *lag*.

A loop that is blocked (a callback that computes, a blocking call made on
the loop by mistake) runs everything else late, and every blocking facade
on that loop feels slow. :class:`LagProbe` measures it the way an operator
would: a timer is set for a known moment, and when it fires the probe
notes how late it is. It then sets the next one, ``interval`` later, so
the probe costs one timer callback per interval.

Everything runs on the loop's thread; other threads only read ``last``
and the window (a ``deque`` with a ``maxlen``, copied in one step).
Timers fire up to about a millisecond late on an idle loop (the selector
waits in whole milliseconds), so lags below that are noise.
"""

from __future__ import annotations

import asyncio
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

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Set the first probe (on the loop's thread, or before it runs)."""
        self._recent.clear()
        self.last = None
        loop.call_later(self.interval, self._fire, loop, loop.time() + self.interval)

    def _fire(self, loop: asyncio.AbstractEventLoop, due: float) -> None:
        now = loop.time()
        lag = max(0.0, now - due)
        self.last = lag
        self._recent.append(lag)
        loop.call_later(self.interval, self._fire, loop, now + self.interval)

    def stats(self) -> dict[str, float | None]:
        """``lag_seconds`` (latest) and ``lag_max_seconds`` (the last minute)."""
        recent = list(self._recent)
        return {
            "lag_seconds": self.last,
            "lag_max_seconds": max(recent) if recent else None,
        }
