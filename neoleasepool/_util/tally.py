"""Counters and fixed-bucket histograms that any thread may feed, lock-free.

A component counts at points where it already does something per item, on
whichever thread that happens: the loop, a worker thread, a caller
cancelling. A lock there would be taken once per item by every thread. So
a :class:`Tally` keeps one *shard* per thread instead:

* **Writers.** A thread only ever writes its own shard (found through a
  ``threading.local``), with plain ``+=``: no other thread writes that
  shard, so no update is lost, with or without the GIL.
* **Readers** (``stats()``, a scrape) add the shards up under the tally's
  lock, which only readers and a thread's first write take. A reader may
  see a shard mid-update (a bucket counted, its sum not yet): a figure is
  at most one observation behind, never wrong for longer.
* **Threads that end.** A reader folds the shard of a thread that has
  ended into ``retired`` and drops it, so pools that replace their threads
  do not make the tally grow. "Ended" is not ``Thread.is_alive()`` (the
  main thread is marked stopped before ``atexit`` handlers run, which may
  still count; a thread not started by :mod:`threading` always looks
  alive): each shard comes with a token kept only in its thread's
  ``threading.local``, and the reader holds a weak reference to it. The
  token dies when the thread's state is torn down, after the thread's
  last write, so folding then loses nothing. Each shard is looked at once
  per read, and either kept or folded, never both.

A write made before something that synchronises threads (setting a
future's result, a lock) is seen by a reader after it: a caller that holds
an item's result finds the item counted.

Histograms have fixed upper bounds, as Prometheus histograms do; a
snapshot gives per-bucket counts, the sum and the count, and estimates
quantiles the way ``histogram_quantile`` does.
"""

from __future__ import annotations

import bisect
import math
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["TIME_BUCKETS", "HistogramSnapshot", "Tally", "TallyShard"]

#: Upper bounds, in seconds, for durations from microseconds to minutes.
TIME_BUCKETS: tuple[float, ...] = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)

_bucket_of = bisect.bisect_left  # the first bound >= value ("le" is inclusive)


class _Alive:
    """Lives exactly as long as its thread's ``threading.local`` data."""

    __slots__ = ("__weakref__",)


class TallyShard:
    """One thread's counts and histograms; only that thread writes it."""

    __slots__ = ("buckets", "counts", "sums")

    def __init__(self, counters: int, histograms: int, buckets: int) -> None:
        self.counts = [0] * counters
        #: Per histogram, the count of each bucket (the last is ``+Inf``).
        self.buckets = [[0] * (buckets + 1) for _ in range(histograms)]
        self.sums = [0.0] * histograms

    def add_into(self, other: TallyShard) -> None:
        """Add this shard's figures to ``other`` (a reader's total)."""
        for index, count in enumerate(self.counts):
            other.counts[index] += count
        for mine, theirs in zip(self.buckets, other.buckets, strict=True):
            for index, count in enumerate(mine):
                theirs[index] += count
        for index, total in enumerate(self.sums):
            other.sums[index] += total


@dataclass(frozen=True)
class HistogramSnapshot:
    """A histogram at one moment.

    Attributes:
        bounds: The buckets' upper bounds, ascending (``+Inf`` implied last).
        counts: Observations per bucket, ``len(bounds) + 1`` of them (not
            cumulative; the last is above every bound).
        sum: The sum of all observations.
    """

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    sum: float

    @property
    def count(self) -> int:
        """How many observations (equal to the ``+Inf`` bucket)."""
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, observations <= it)`` pairs, ending with ``+Inf``."""
        pairs: list[tuple[float, int]] = []
        running = 0
        for bound, count in zip((*self.bounds, math.inf), self.counts, strict=True):
            running += count
            pairs.append((bound, running))
        return pairs

    def minus(self, earlier: HistogramSnapshot) -> HistogramSnapshot:
        """The observations made since ``earlier`` (same bounds)."""
        counts = tuple(a - b for a, b in zip(self.counts, earlier.counts, strict=True))
        return HistogramSnapshot(self.bounds, counts, self.sum - earlier.sum)

    def quantile(self, q: float) -> float | None:
        """Estimate the ``q`` quantile (0..1) by linear interpolation within
        its bucket, as Prometheus' ``histogram_quantile`` does; ``None``
        without observations. A quantile in the ``+Inf`` bucket gives the
        highest bound."""
        total = self.count
        if total == 0:
            return None
        rank = q * total
        lower, below = 0.0, 0
        for bound, running in self.cumulative():
            if running >= rank and running > below:
                if math.isinf(bound):
                    return lower
                return lower + (bound - lower) * (rank - below) / (running - below)
            lower, below = (bound if not math.isinf(bound) else lower), running
        return lower


class Tally:
    """Named counters and histograms, fed from any thread without a lock.

    Args:
        counters: The counters' names (index ``i`` of ``shard().counts``).
        histograms: The histograms' names (index ``i`` of
            :meth:`TallyShard` buckets and sums).
        bounds: The histograms' bucket upper bounds, ascending.

    Raises:
        ValueError: If the bounds are empty, unsorted or not finite, or a
            name repeats.
    """

    def __init__(
        self,
        counters: Sequence[str],
        histograms: Sequence[str] = (),
        bounds: Sequence[float] = TIME_BUCKETS,
    ) -> None:
        bounds = tuple(float(b) for b in bounds)
        if histograms and (
            not bounds
            or any(not math.isfinite(b) for b in bounds)
            or list(bounds) != sorted(set(bounds))
        ):
            raise ValueError(
                f"histogram bounds must be finite and strictly ascending, got {bounds}"
            )
        for names in (counters, histograms):
            if len(set(names)) != len(names):
                raise ValueError(f"names must be unique, got {list(names)}")
        self.counters = tuple(counters)
        self.histograms = tuple(histograms)
        self.bounds = bounds
        #: Holds each thread's shard as ``shard`` (hot paths may read it
        #: directly, falling back to :meth:`shard` on ``AttributeError``).
        self.local = threading.local()
        self._lock = threading.Lock()
        self._live: list[tuple[weakref.ref[_Alive], TallyShard]] = []
        self._retired = self._new_shard()

    def __repr__(self) -> str:
        return (
            f"<Tally counters={len(self.counters)} histograms={len(self.histograms)} "
            f"shards={len(self._live)}>"
        )

    def _new_shard(self) -> TallyShard:
        return TallyShard(len(self.counters), len(self.histograms), len(self.bounds))

    # ------------------------------------------------------------- writers

    def shard(self) -> TallyShard:
        """The calling thread's shard (made on its first call). Only this
        thread may write it."""
        try:
            shard: TallyShard = self.local.shard
        except AttributeError:
            shard = self._new_shard()
            alive = _Alive()
            with self._lock:
                self._live.append((weakref.ref(alive), shard))
            self.local.alive = alive  # dies with the thread's local data
            self.local.shard = shard
        return shard

    def add(self, counter: int, n: int = 1) -> None:
        """Add ``n`` to counter number ``counter`` (on this thread's shard)."""
        self.shard().counts[counter] += n

    def observe(self, histogram: int, value: float, n: int = 1) -> None:
        """Record ``value`` ``n`` times in histogram number ``histogram``."""
        shard = self.shard()
        shard.buckets[histogram][_bucket_of(self.bounds, value)] += n
        shard.sums[histogram] += value * n

    # ------------------------------------------------------------- readers

    def total(self) -> TallyShard:
        """Every shard added up (a fresh shard; the tally is unchanged)."""
        total = self._new_shard()
        with self._lock:
            kept: list[tuple[weakref.ref[_Alive], TallyShard]] = []
            for alive, shard in self._live:  # one look at each shard
                if alive() is None:  # its thread is gone: fold it in
                    shard.add_into(self._retired)
                else:
                    kept.append((alive, shard))
                    shard.add_into(total)
            self._live = kept
            self._retired.add_into(total)
        return total

    def counts(self) -> dict[str, int]:
        """Each counter's total, by name."""
        return dict(zip(self.counters, self.total().counts, strict=True))

    def snapshot(self) -> tuple[dict[str, int], dict[str, HistogramSnapshot]]:
        """Counters by name and histograms by name, from one pass."""
        total = self.total()
        histograms = {
            name: HistogramSnapshot(self.bounds, tuple(total.buckets[index]), total.sums[index])
            for index, name in enumerate(self.histograms)
        }
        return dict(zip(self.counters, total.counts, strict=True)), histograms

