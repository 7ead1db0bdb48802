"""A grinder's counts and item timings, fed from any thread without a lock.

Items end on whichever thread decides their future (the loop, a worker
thread, a caller's ``cancel()``), and each end is counted there, once, on
that thread's own shard of a :class:`~neoleasepool._util.tally.Tally` (see
its module for why that needs no lock and loses nothing).

With timing on (``WorkGrinder(metrics=True)``, the default), an item that
ran also records three durations, in seconds:

* ``queue``: from its submission until it left the grinder's queue (taken
  by a batch, or by a lane runner on a worker thread);
* ``run``: from then until its end: the executor call, including the
  items before it in its chunk and the executor's own queue;
* ``latency``: the two together, submission to end, as its caller sees it.

Cancelled items, items that never left the queue, and the chunks of a
``map`` (one item carries a whole chunk; ``map`` has its own figures) are
counted but not timed.
"""

from __future__ import annotations

import logging
from bisect import bisect_left as _bucket_of
from collections.abc import Callable
from time import monotonic as _monotonic
from typing import TYPE_CHECKING

from .._util.failures import FailureLog, raised_in
from .._util.tally import HistogramSnapshot, Tally

if TYPE_CHECKING:
    from .items import Item

__all__ = ["COUNTS", "TIMES", "ItemCounts", "TimingMirror"]

#: Called with an item's queue, run and latency seconds, on the thread
#: that ended it; it must be thread-safe and quick.
TimingMirror = Callable[[float, float, float], None]

#: The grinder's counters.
COUNTS = ("submitted", "batches", "leases", "completed", "failed", "cancelled")
#: The item timings, in histogram order.
TIMES = ("queue", "run", "latency")

logger = logging.getLogger("neoleasepool.grinder")

_INDEX = {name: index for index, name in enumerate(COUNTS)}


class ItemCounts:
    """The counters of :data:`COUNTS` and (``timing``) the item timings."""

    def __init__(self, timing: bool = True) -> None:
        self.timing = timing
        self._tally = Tally(COUNTS, TIMES if timing else ())
        self._local = self._tally.local
        self._bounds = self._tally.bounds
        #: The last failed items: function name and error, never arguments.
        self.failures = FailureLog()
        #: Also given each item's timings (the OpenTelemetry bridge), or ``None``.
        self.mirror: TimingMirror | None = None

    def count(self, what: str, n: int = 1) -> None:
        """Add ``n`` to the counter ``what`` (any thread)."""
        self._tally.add(_INDEX[what], n)

    def ended(self, item: Item, how: str, error: BaseException | None = None) -> None:
        """Count ``item``'s end as ``how`` and, if it ran, time it; keep
        its ``error`` in :attr:`failures` (the thread that ended it, before
        its caller can see the end). Once per item: kept lean."""
        try:
            shard = self._local.shard  # Tally.shard(), inlined
        except AttributeError:
            shard = self._tally.shard()
        shard.counts[_INDEX[how]] += 1
        if error is not None:  # (its call may be forgotten already)
            self.failures.record(item.name() if item.fn else raised_in(error), error)
        started = item.started_at
        if not started or not self.timing or how == "cancelled" or not item.timed:
            return
        now = _monotonic()
        submitted = item.enqueued_at
        queue, run, latency = started - submitted, now - started, now - submitted
        bounds, buckets, sums = self._bounds, shard.buckets, shard.sums
        buckets[0][_bucket_of(bounds, queue)] += 1
        buckets[1][_bucket_of(bounds, run)] += 1
        buckets[2][_bucket_of(bounds, latency)] += 1
        sums[0] += queue
        sums[1] += run
        sums[2] += latency
        mirror = self.mirror
        if mirror is not None:
            try:
                mirror(queue, run, latency)
            except Exception:  # the item ends regardless (logged at DEBUG)
                logger.debug("timing mirror failed", exc_info=True)

    def counts(self) -> dict[str, int]:
        """Each counter's total, by name."""
        return self._tally.counts()

    def snapshot(self) -> tuple[dict[str, int], dict[str, HistogramSnapshot]]:
        """The counters and (if timed) the timings, from one pass."""
        return self._tally.snapshot()
