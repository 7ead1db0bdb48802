"""The grinder's ``stats`` methods: the snapshot and its other forms.

:class:`StatsMethods` is a part of :class:`~.facade.WorkGrinder`: the
snapshot reads the facade's parts on the grinder's loop (their owner), and
other threads get it through that loop. It relies on what the facade
provides, declared below.
"""

from __future__ import annotations

import concurrent.futures
from typing import TYPE_CHECKING, Any

from .._util.loops import LoopBinding
from .._util.tally import HistogramSnapshot
from .._util.validation import check_optional_timeout
from ..exceptions import LeasePoolNotStartedError
from ..types import Stats
from .batches import Batches
from .chunking import ChunkPlanner
from .counts import TimingMirror
from .intake import Intake
from .mapping import MapRuns
from .options import GrinderOptions
from .pipeline import Pipeline
from .queue import ItemQueue

__all__ = ["StatsMethods"]


class StatsMethods:
    """``stats``, ``astats``, ``stats_from_thread`` and ``item_timings`` of a
    :class:`~.facade.WorkGrinder`."""

    # Provided by the facade (declared for type checking only).
    _started: bool
    _binding: LoopBinding
    _queue: ItemQueue
    _options: GrinderOptions
    _intake: Intake
    _planner: ChunkPlanner
    _maps: MapRuns
    _pipeline: Pipeline | None

    if TYPE_CHECKING:

        @property
        def _batches(self) -> Batches | None: ...

        @property
        def _stopping(self) -> bool: ...

        def _state(self) -> str: ...

    def stats(self) -> Stats:
        """A JSON-serialisable snapshot.

        Safe before start and after stop; while running, call it on the
        grinder's loop (other threads: :meth:`stats_from_thread`).

        Raises:
            WrongLoopError: If called from another thread while running.
        """
        if self._started and not self._binding.on_loop_thread():
            self._binding.require_owner("stats", "stats_from_thread()")
        batches, pipeline = self._batches, self._pipeline
        if self._started and batches is not None:
            # Count chunks that finished but are not settled yet: their
            # callers may already hold the results.
            batches.settle_posted()
        return {
            "state": self._state(),
            "started": self._started,
            "stopping": self._stopping,
            "pending": self._queue.pending,
            "batch_size_threshold": self._options.threshold,
            "max_wait_seconds": self._options.max_wait,
            "lease_seconds": self._options.lease_seconds,
            "oldest_wait_seconds": self._queue.oldest_wait(),
            "batches_in_flight": 0 if batches is None else len(batches.open),
            "leases_held": 0 if pipeline is None else len(pipeline.workers),
            "running": 0 if batches is None else len(batches.running),
            **self._intake.stats(),
            "chunking": "auto" if self._planner.fixed is None else self._planner.fixed,
            "avg_item_seconds": self._planner.avg_item_seconds,
            **self._maps.stats(),
        }

    def item_timings(self) -> dict[str, HistogramSnapshot]:
        """Histograms of the items' ``queue``, ``run`` and ``latency``
        seconds since the grinder was made (see ``grinder/counts.py`` for
        what each measures); empty with ``metrics=False``. Safe from any
        thread, without a hop to the loop."""
        return self._intake.tally.snapshot()[1]

    def set_timing_mirror(self, mirror: TimingMirror | None) -> None:
        """Also hand each timed item's ``(queue, run, latency)`` seconds to
        ``mirror``, on the thread that ended the item (the OpenTelemetry
        bridge records them in its histograms); ``None`` stops it. Nothing
        is mirrored with ``metrics=False``."""
        self._intake.tally.mirror = mirror

    def recent_failures(self) -> list[dict[str, Any]]:
        """The last items that failed, oldest first: when, the function's
        name, the error's type and its message cut short (never the
        arguments or results). Safe from any thread."""
        return self._intake.tally.failures.recent()

    async def astats(self) -> Stats:
        """:meth:`stats`, awaited on the grinder's loop."""
        if self._started:
            self._binding.require_owner("astats", "stats_from_thread()")
        return self.stats()

    def stats_from_thread(self, timeout: float | None = None) -> Stats:
        """:meth:`stats` from another thread, waiting up to ``timeout``.

        Raises:
            LeasePoolNotStartedError: If the grinder is not started.
            WrongLoopError: If called on the grinder's own loop thread.
            TimeoutError: If the loop does not answer in time.
        """
        timeout = check_optional_timeout("timeout", timeout)
        return self.stats_later().result(timeout)

    def stats_later(self) -> concurrent.futures.Future[Stats]:
        """:meth:`stats`, taken on the grinder's loop, as a future (from
        another thread; cancelling the future before the loop gets to it
        drops the request). Lets a reader ask several grinders at once.

        Raises:
            LeasePoolNotStartedError: If the grinder is not started.
            WrongLoopError: If called on the grinder's own loop thread.
        """
        loop = self._binding.require_foreign_thread(
            "stats_from_thread", "stats() or await astats()"
        )
        if loop is None or not self._started:
            raise LeasePoolNotStartedError(
                "WorkGrinder is not started (WorkGrinder.stats_from_thread())"
            )
        answer: concurrent.futures.Future[Stats] = concurrent.futures.Future()

        def _snapshot() -> None:
            # On the loop, the owner of everything stats() reads.
            if answer.set_running_or_notify_cancel():
                try:
                    answer.set_result(self.stats())
                except BaseException as exc:  # handed to the caller, never lost
                    answer.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise

        try:
            loop.call_soon_threadsafe(_snapshot)
        except RuntimeError:
            raise LeasePoolNotStartedError(
                "WorkGrinder.stats_from_thread(): the grinder's loop is closed"
            ) from None
        return answer

    def item_counts(self) -> Stats:
        """The counting part of :meth:`stats` (``items_*``, ``batches_run``,
        ``leases_acquired``, the lane's counts), read from any thread
        without a hop to the loop: what a reader can still show of a grinder
        whose loop does not answer."""
        return dict(self._intake.stats())
