"""How many items one executor call runs.

Handing an item to a worker costs a cross-thread hand-off (tens of
microseconds), or a pickled round trip to a process (hundreds).  For tiny
items that overhead dominates, so the grinder groups items into *chunks*.
But a chunk's results come back together, so grouping slow items would make
each caller wait for its chunk-mates.

The planner therefore measures how long items take (workers time each
chunk) and sizes chunks to about ``target_seconds`` of work: items slower
than that run one per call, with per-item latency; tiny items are grouped,
and a batch is spread over the pool's workers once it holds more than
``target_seconds`` of work in all (below that, one call runs it whole).  A fixed
``chunk_size`` overrides the measurement.
"""

from __future__ import annotations

import math

__all__ = ["ChunkPlanner"]

#: Work per chunk the automatic planner aims for, in seconds.
DEFAULT_TARGET_SECONDS = 0.002


class ChunkPlanner:
    """Chooses chunk sizes from measured item durations.

    Args:
        fixed: A fixed chunk size, or ``None`` to size automatically.
        target_seconds: Work per chunk the automatic mode aims for.
    """

    __slots__ = ("_avg", "_fixed", "_target")

    def __init__(self, fixed: int | None, target_seconds: float = DEFAULT_TARGET_SECONDS) -> None:
        self._fixed = fixed
        self._target = target_seconds
        self._avg: float | None = None

    def __repr__(self) -> str:
        mode = f"fixed={self._fixed}" if self._fixed else "auto"
        return f"<ChunkPlanner {mode} avg_item_seconds={self._avg}>"

    @property
    def fixed(self) -> int | None:
        """The fixed chunk size, or ``None`` in automatic mode."""
        return self._fixed

    @property
    def avg_item_seconds(self) -> float | None:
        """Smoothed seconds per item, or ``None`` before any measurement."""
        return self._avg

    def observe(self, items: int, seconds: float) -> None:
        """Record that a chunk of ``items`` ran in ``seconds``."""
        if items <= 0:
            return
        per_item = max(seconds, 0.0) / items
        self._avg = per_item if self._avg is None else 0.7 * self._avg + 0.3 * per_item

    def chunk_size(self, items: int, workers: int) -> int:
        """Items per call for a batch of ``items`` on ``workers`` workers."""
        if self._fixed is not None:
            return max(1, min(self._fixed, items))
        if self._avg is None:
            return 1
        if self._avg * items <= self._target:
            return items  # the whole batch is less work than one hand-off is worth splitting
        wanted = self._target / max(self._avg, 1e-9)
        spread = math.ceil(items / max(1, workers))
        return max(1, min(int(wanted), spread))
