"""When the grinder's own code fails: one fault breaks the run, visibly.

``concurrent.futures`` only logs an exception raised by a done-callback, and
asyncio only logs one raised by a callback or a task nobody awaits; either
way the items that step held would wait forever. So every internal step
(the batcher, a lease worker, a chunk's or a runner's done-callback,
settling, the hand-off, the intake) reports what it raised to the run's
:class:`Breaker`, from whatever thread it runs on. The first report breaks
the run: it is logged once, with its traceback, and the run's ``on_break``
ends every item the run holds with :meth:`Breaker.error` (leasepool's
``WorkGrinder loop crashed``, a :class:`LeasePoolNotStartedError` chained
to the fault). Until the grinder is stopped and started again, new items
are refused at once with the same error. ``doc/architecture.md`` ("When our
own code fails") lists the steps and what each component does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from .._util.loops import LoopBinding
from ..exceptions import LeasePoolNotStartedError

__all__ = ["Breaker"]


class Breaker:
    """Whether one run of a grinder is broken, and why.

    Each run has its own, so that a late report from a step of an earlier
    run (a chunk's callback that outlived a cancelling stop) never breaks
    the next one.

    Args:
        binding: The grinder's loop binding.
        logger: Where the fault is logged.
    """

    def __init__(self, binding: LoopBinding, logger: logging.Logger) -> None:
        self._binding = binding
        self._logger = logger
        self._on_break: Callable[[BaseException], None] = lambda error: None
        self._running: Callable[[], bool] = lambda: False
        #: The fault that broke the run, and the step it came from.
        self.fault: BaseException | None = None
        self.where = ""

    def attach(
        self, on_break: Callable[[BaseException], None], running: Callable[[], bool]
    ) -> None:
        """Bind to a run: ``on_break`` ends its items with the error (loop
        thread); ``running`` says whether that run is still the current one."""
        self._on_break, self._running = on_break, running

    @property
    def broken(self) -> bool:
        return self.fault is not None

    def report(self, where: str, exc: BaseException) -> None:
        """``where`` raised ``exc`` (any thread): break the run, on the loop."""
        loop = self._binding.loop
        if loop is not None and self._binding.on_loop_thread():
            self.broke(where, exc)
            return
        try:
            if loop is None:
                raise RuntimeError("the grinder has no loop")
            loop.call_soon_threadsafe(self.broke, where, exc)
        except RuntimeError:  # stopped: whatever that step held ended then
            self._logger.error("grinder step failed after its stop: %s", where, exc_info=exc)

    def broke(self, where: str, exc: BaseException) -> None:
        """On the loop: break the run, once; later faults are only noted."""
        if not self._running():
            self._logger.error("grinder step failed after its run: %s", where, exc_info=exc)
            return
        if self.fault is not None:
            self._logger.debug("grinder step failed while broken: %s: %r", where, exc)
            return
        self.fault, self.where = exc, where
        self._logger.error(
            "grinder broken: %s crashed; failing every item it holds and refusing new "
            "ones until the grinder is restarted", where, exc_info=exc,
        )
        self._on_break(self.error())

    def error(self) -> LeasePoolNotStartedError:
        """What the run's items fail with, and new ones are refused with."""
        error = LeasePoolNotStartedError(  # leasepool's words first
            f"WorkGrinder loop crashed ({self.where} crashed: {self.fault!r}); "
            "the grinder is broken until it is stopped and started again"
        )
        error.__cause__ = self.fault
        return error
