"""The interval worker: a target run on a timer, from an aloop (private).

:class:`BackgroundIntervalWorker` is a
:class:`~.async_worker.BackgroundAsyncWorker` whose loop waits between
runs.  Every wait (the period, ``delay_before``) is on one asyncio event,
the worker's wake-up, with a timeout: a trigger or a stop sets it from any
thread through the aloop, so nothing polls and a stop ends a wait at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .._util.validation import check_duration
from .async_worker import BackgroundAsyncWorker

__all__ = ["BackgroundIntervalWorker"]


class BackgroundIntervalWorker(BackgroundAsyncWorker):
    """Runs its target on a timer.

    With ``interval=`` runs start at a fixed rate (a run that overruns
    delays the next one rather than causing a burst); with ``delay=`` the
    worker sleeps that long after each run.  The first run is immediate,
    unless ``delay_before=`` asks for a pause before each run (the first
    and triggered ones included); with ``interval=`` that pause is part of
    the period, so the rate stays the same and each run is shifted by it.
    Every wait is on the worker's wake-up event, so :meth:`stop` ends one at
    once.  ``start(_interval=...)``, ``start(_delay=...)`` or
    ``start(_delay_before=...)`` overrides them.

    Args:
        interval: Seconds between run starts.
        delay: Seconds between the end of a run and the next; 1 by default.
        delay_after: neotasker's name for ``delay``.
        delay_before: Seconds to pause before each run; 0 by default.
        **kwargs: The options of :class:`BackgroundAsyncWorker`.

    Raises:
        ValueError: If a period is negative, NaN or infinite.
    """

    def __init__(
        self,
        *args: Any,
        interval: float | None = None,
        delay: float | None = None,
        delay_after: float | None = None,
        delay_before: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.keep_interval = interval is not None
        self.delay = self._period(interval, delay, delay_after)
        self.delay_before = _pause_length("delay_before", delay_before)
        self._wake: asyncio.Event | None = None
        self._skip = False

    @staticmethod
    def _period(interval: Any, delay: Any, delay_after: Any) -> float:
        for name, value in (
            ("interval", interval),
            ("delay", delay),
            ("delay", delay_after),
        ):
            if value is not None:
                return check_duration(name, value, allow_zero=True)
        return 1.0

    def _apply_start_options(self, kwargs: dict[str, Any]) -> None:
        super()._apply_start_options(kwargs)
        interval = kwargs.pop("_interval", None)
        delay = kwargs.pop("_delay", None)
        delay_after = kwargs.pop("_delay_after", None)
        if interval is not None or delay is not None or delay_after is not None:
            self.keep_interval = interval is not None
            self.delay = self._period(interval, delay, delay_after)
        if "_delay_before" in kwargs:
            self.delay_before = _pause_length("_delay_before", kwargs.pop("_delay_before"))

    def _prepare(self) -> None:
        self._wake = asyncio.Event()
        self._skip = False

    def send_stop_events(self) -> None:
        """Wake the sleeping loop so that it sees the stop."""
        if self._wake is not None:
            self._wake_threadsafe(self._wake.set)

    def trigger_threadsafe(self, force: bool = False, skip: bool = False) -> None:
        """Run the target now instead of at the end of the current sleep.

        Args:
            force: Accepted for neotasker compatibility.
            skip: Skip that run: only restart the period from now.

        Raises:
            LeasePoolNotStartedError: If the worker is not running.
        """
        aloop = self._require_running("trigger_threadsafe")
        assert self._wake is not None
        # ``_skip`` belongs to the worker's loop, which reads and clears it:
        # set it there, in the same callback that wakes the loop.
        aloop.call_soon(self._wake_up, self._wake, skip)

    def _wake_up(self, wake: asyncio.Event, skip: bool) -> None:
        """On the worker's loop: a trigger (that may skip the run) arrives."""
        self._skip = skip
        wake.set()

    async def trigger(self, force: bool = False, skip: bool = False) -> None:
        """:meth:`trigger_threadsafe` for code on the worker's own loop."""
        self._require_worker_loop("trigger", "trigger_threadsafe()")
        self._require_running("trigger")
        assert self._wake is not None
        self._skip = skip
        self._wake.set()

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        wake = self._wake
        assert wake is not None
        next_start = loop.time()
        while self._active:
            if self.delay_before and not self._skip:
                await self._pause_before_run(wake, self.delay_before)
                if not self._active:
                    return
            if self._skip:
                self._skip = False
                next_start = loop.time()
            elif not await self._launch():
                return
            if not self._active:
                return
            if self.keep_interval:
                next_start = max(next_start + self.delay, loop.time())
                timeout = next_start - loop.time()
            else:
                timeout = self.delay
            if timeout <= 0 and not wake.is_set():
                await asyncio.sleep(0)  # due now (no delay): yield once, run again
                continue
            try:
                await asyncio.wait_for(wake.wait(), timeout)
            except asyncio.TimeoutError:
                continue
            wake.clear()
            next_start = loop.time()

    async def _pause_before_run(self, wake: asyncio.Event, seconds: float) -> None:
        """Wait ``seconds`` before a run; a stop or a skipping trigger ends it.

        A plain trigger meanwhile asks for the run that is coming anyway,
        so it is merged into it and the pause goes on.
        """
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        while self._active and not self._skip:
            left = until - loop.time()
            if left <= 0:
                return
            try:
                await asyncio.wait_for(wake.wait(), left)
            except asyncio.TimeoutError:
                return
            wake.clear()


def _pause_length(name: str, value: Any) -> float:
    """``delay_before``: ``None`` or seconds ``>= 0``."""
    return 0.0 if value is None else check_duration(name, value, allow_zero=True)
