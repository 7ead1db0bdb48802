"""The recent past of a supervisor, for the status page's plots.

While the status server runs it takes a :class:`~.reading.Reading` about
once a second (:data:`SAMPLE_SECONDS`) and hands it to :meth:`History.add`.
Kept per grinder: its item counts, its queue depth and its ``latency``
histogram (:class:`~neoleasepool._util.tally.HistogramSnapshot`); per
aloop: its lag. From consecutive samples come the throughput and the p50
and p95 latency of each interval; from the oldest sample in the last
:data:`WINDOW_SECONDS` to the newest, the same over the last minute.

Every series is a ring (a ``deque`` with ``maxlen`` :data:`KEPT`), and the
history of a grinder or aloop that is no longer in the latest reading is
dropped: memory does not grow with uptime, nor with parts that come and go.

:class:`Sampler` takes the readings: about once a second on a timer of
the loop (not a sleep loop), and whenever a request wants one. Threads:

* the loop thread runs the sampler, :meth:`History.add` and every reader
  of the history (:meth:`History.grinder`, :meth:`History.aloop_lags`):
  nothing here is written by another thread;
* a reading hops to each grinder's loop and waits, so it is taken on the
  executor's thread (never on an event loop) and comes back to the loop
  as a finished object through the executor's future. One reading at a
  time: whoever asks while one is being taken waits for that one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .._util.tally import HistogramSnapshot
from .reading import GrinderReading, Reading

__all__ = [
    "KEPT",
    "SAMPLE_SECONDS",
    "WINDOW_SECONDS",
    "AloopSample",
    "GrinderHistory",
    "GrinderSample",
    "History",
    "Interval",
    "Sampler",
]

logger = logging.getLogger("neoleasepool.observe")

#: Seconds between two samples.
SAMPLE_SECONDS = 1.0
#: Samples kept per grinder and per aloop (two minutes' worth).
KEPT = 120
#: The span of the "last minute" figures.
WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class GrinderSample:
    """A grinder's figures at one reading.

    Attributes:
        time: The reading's Unix time (shown).
        clock: When it was taken, in seconds of a monotonic clock (for
            rates and order: the wall clock may be set back).
        ended: Items completed or failed so far (cancelled items did no work).
        pending: Items in the queue (``None`` if its loop did not answer).
        latency: The latency histogram, ``None`` with ``metrics=False``.
    """

    time: float
    clock: float
    ended: int
    pending: int | None
    latency: HistogramSnapshot | None

    @classmethod
    def of(cls, time: float, clock: float, grinder: GrinderReading) -> GrinderSample:
        """The sample of ``grinder`` in a reading taken at ``time`` (``clock``)."""
        stats = grinder.stats
        return cls(
            time,
            clock,
            int(stats["items_completed"]) + int(stats["items_failed"]),
            None if stats.get("pending") is None else int(stats["pending"]),
            grinder.timings.get("latency"),
        )


@dataclass(frozen=True)
class Interval:
    """What happened between two samples.

    Attributes:
        time: When the later sample was taken (Unix time).
        items_per_second: Items ended per second; ``None`` if no time passed.
        p50: The median latency of the items that ended, in seconds;
            ``None`` if none ended or latency is not measured.
        p95: Their 95th percentile, likewise.
    """

    time: float
    items_per_second: float | None
    p50: float | None
    p95: float | None


def between(earlier: GrinderSample, later: GrinderSample) -> Interval:
    """The :class:`Interval` from ``earlier`` to ``later``."""
    seconds = later.clock - earlier.clock
    rate = (later.ended - earlier.ended) / seconds if seconds > 0 else None
    p50 = p95 = None
    if later.latency is not None and earlier.latency is not None:
        new = later.latency.minus(earlier.latency)
        p50, p95 = new.quantile(0.5), new.quantile(0.95)
    return Interval(later.time, rate, p50, p95)


class GrinderHistory:
    """A grinder's last :data:`KEPT` samples."""

    def __init__(self, kept: int = KEPT) -> None:
        self.samples: deque[GrinderSample] = deque(maxlen=kept)

    def __len__(self) -> int:
        return len(self.samples)

    def add(self, sample: GrinderSample) -> None:
        """Keep ``sample`` (one no newer than the last is ignored); a count
        that went down (the grinder was replaced by another of the same
        name) starts the history afresh."""
        last = self.samples[-1] if self.samples else None
        if last is not None and sample.clock <= last.clock:
            return
        if last is not None and (
            sample.ended < last.ended
            or (last.latency is None) != (sample.latency is None)
            or (sample.latency is not None and last.latency is not None
                and sample.latency.count < last.latency.count)
        ):
            self.samples.clear()
        self.samples.append(sample)

    def intervals(self) -> Iterator[Interval]:
        """The interval between each two consecutive samples, oldest first."""
        samples = list(self.samples)
        for earlier, later in itertools.pairwise(samples):
            yield between(earlier, later)

    def window(self, seconds: float = WINDOW_SECONDS) -> Interval | None:
        """The last ``seconds`` as one interval (from the oldest sample that
        young to the newest); ``None`` with fewer than two samples."""
        if len(self.samples) < 2:
            return None
        newest = self.samples[-1]
        start = next(
            (s for s in self.samples if newest.clock - s.clock <= seconds + SAMPLE_SECONDS / 2),
            newest,
        )
        if start is newest:
            start = self.samples[-2]
        return between(start, newest)


@dataclass(frozen=True)
class AloopSample:
    """An aloop's lag at one reading (``None`` before its first probe)."""

    time: float
    lag: float | None


class History:
    """Samples of every grinder and aloop of the latest readings.

    Args:
        kept: Samples kept per grinder and per aloop.
    """

    def __init__(self, kept: int = KEPT) -> None:
        if isinstance(kept, bool) or not isinstance(kept, int) or kept < 2:
            raise ValueError(f"kept must be an integer >= 2, got {kept!r}")
        self.kept = kept
        self._grinders: dict[str, GrinderHistory] = {}
        self._aloops: dict[str, deque[AloopSample]] = {}
        #: Readings taken in (for display and tests).
        self.samples_taken = 0
        self._latest = -math.inf

    def __repr__(self) -> str:
        return (
            f"<History grinders={len(self._grinders)} aloops={len(self._aloops)} "
            f"samples={self.samples_taken}>"
        )

    def add(self, reading: Reading, clock: float | None = None) -> None:
        """Take in ``reading``, taken at ``clock`` (a monotonic clock's
        seconds; by default its Unix time); forget the parts it no longer
        lists. A reading no newer than the latest (a shared one, taken
        again) is ignored."""
        clock = reading.time if clock is None else clock
        if clock <= self._latest:
            return
        self._latest = clock
        self.samples_taken += 1
        seen: set[str] = set()
        for grinder in reading.grinders:
            name = str(grinder.stats["name"])
            seen.add(name)
            history = self._grinders.get(name)
            if history is None:
                history = self._grinders[name] = GrinderHistory(self.kept)
            history.add(GrinderSample.of(reading.time, clock, grinder))
        for name in set(self._grinders) - seen:
            del self._grinders[name]
        seen.clear()
        for aloop in _all_aloops(reading):
            name = str(aloop["name"])
            seen.add(name)
            ring = self._aloops.get(name)
            if ring is None:
                ring = self._aloops[name] = deque(maxlen=self.kept)
            ring.append(AloopSample(reading.time, _finite(aloop.get("lag_seconds"))))
        for name in set(self._aloops) - seen:
            del self._aloops[name]

    def grinder(self, name: str) -> GrinderHistory | None:
        """The history of the grinder ``name``, if it was in the latest reading."""
        return self._grinders.get(name)

    def aloop_lags(self, name: str) -> list[AloopSample]:
        """The lag samples of the aloop ``name``, oldest first."""
        return list(self._aloops.get(name, ()))

    def sizes(self) -> dict[str, int]:
        """Samples held per ring, by ``grinder:<name>`` and ``aloop:<name>``."""
        sizes = {f"grinder:{n}": len(h) for n, h in self._grinders.items()}
        sizes.update({f"aloop:{n}": len(r) for n, r in self._aloops.items()})
        return sizes


class Sampler:
    """Takes readings for a loop: one every :data:`SAMPLE_SECONDS` into
    :attr:`history`, and shared ones on demand (:meth:`reading`).

    Args:
        read: Takes a reading (called on ``executor``'s thread).
        executor: Where readings are taken; its owner shuts it down.
        history: Where the samples go (a new one by default).
    """

    def __init__(
        self,
        read: Callable[[], Reading],
        executor: concurrent.futures.Executor,
        history: History | None = None,
    ) -> None:
        self.history = history if history is not None else History()
        self._read = read
        self._executor = executor
        self._stopped = False
        self._due = 0.0
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._pending: asyncio.Future[Reading] | None = None
        self._last: tuple[float, Reading] | None = None
        self._failing = False  # (a failing reading is logged once, not every second)

    def start(self) -> None:
        """Take the first sample now, then one a second (on the loop)."""
        self._due = asyncio.get_running_loop().time()
        self._start_sample()

    async def stop(self) -> None:
        """Stop sampling; end the sample in progress (on the loop)."""
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
        task = self._task
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._pending is not None:
            self._pending.cancel()

    async def reading(self, max_age: float) -> Reading:
        """A reading at most ``max_age`` seconds old, shared by all who ask."""
        return (await self._stamped(max_age))[1]

    async def _stamped(self, max_age: float) -> tuple[float, Reading]:
        """A reading and when it was taken (``time.monotonic()``)."""
        if self._last is not None and time.monotonic() - self._last[0] <= max_age:
            return self._last
        if self._pending is None:
            loop = asyncio.get_running_loop()
            self._pending = loop.run_in_executor(self._executor, self._read)
            self._pending.add_done_callback(self._took)
        reading = await asyncio.shield(self._pending)
        assert self._last is not None  # (set by _took, which ran before this wakes)
        return self._last if self._last[1] is reading else (time.monotonic(), reading)

    def _took(self, future: asyncio.Future[Reading]) -> None:
        self._pending = None
        if not future.cancelled() and future.exception() is None:
            self._last = (time.monotonic(), future.result())

    def _start_sample(self) -> None:
        if not self._stopped:
            self._task = asyncio.get_running_loop().create_task(self._sample())

    async def _sample(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            clock, reading = await self._stamped(SAMPLE_SECONDS / 2)
            self.history.add(reading, clock)
            self._failing = False
        except asyncio.CancelledError:
            raise
        except Exception:
            if not self._failing:
                logger.exception("status page: taking a sample failed (logged once)")
            self._failing = True
        if not self._stopped:
            # On a fixed rate; after a slow reading, from now.
            self._due = max(self._due + SAMPLE_SECONDS, loop.time())
            self._timer = loop.call_at(self._due, self._start_sample)


def _all_aloops(reading: Reading) -> list[dict[str, object]]:
    own = [reading.own_loop] if reading.own_loop is not None else []
    return [*own, *reading.aloops]


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None
