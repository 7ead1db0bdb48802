"""What the manager thread owes the pool's callers: outcomes and figures.

The manager collects the outcomes of a pass here while it works, and
gives them to their futures at the end of the pass, with no lock held (a
future's callbacks run then, on the manager thread, and may submit, cancel
or shut the pool down). Its figures are published for ``stats()`` under
the pool's lock *before* the futures they count are resolved, so a caller
who has a result also sees it counted.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Future, InvalidStateError
from typing import Any

from .shared import RESTART_REASONS
from .workers import Worker, WorkerState

__all__ = ["Ledger"]


class Ledger:
    """Outcomes waiting for their futures, and the manager's counts.

    Attributes:
        calls_done: Calls that came back from a worker with an outcome.
        restarts: Workers gone, by reason (the keys of ``RESTART_REASONS``).
    """

    def __init__(self) -> None:
        self.calls_done = 0
        self.restarts = dict.fromkeys(RESTART_REASONS, 0)
        self._outcomes: list[tuple[Future[Any], bool, Any]] = []

    def give(self, future: Future[Any], ok: bool, value: Any) -> None:
        """Note an outcome (a result if ``ok``, else an exception)."""
        self._outcomes.append((future, ok, value))

    def fail(self, future: Future[Any], error: BaseException) -> None:
        """Note a failure."""
        self._outcomes.append((future, False, error))

    def publish_locked(self, figures: dict[str, Any], workers: Iterable[Worker]) -> None:
        """Write the figures ``stats()`` reads (the pool's lock held)."""
        counts = dict.fromkeys(WorkerState, 0)
        for worker in workers:
            counts[worker.state] += 1
        figures["workers"] = sum(counts.values())
        figures["busy"] = counts[WorkerState.BUSY]
        figures["idle"] = counts[WorkerState.IDLE]
        figures["starting"] = counts[WorkerState.STARTING]
        figures["stopping"] = counts[WorkerState.STOPPING] + counts[WorkerState.EXITING]
        figures["calls_done"] = self.calls_done
        figures["restarts"].update(self.restarts)

    def resolve(self) -> None:
        """Give every noted outcome to its future (no lock may be held)."""
        outcomes, self._outcomes = self._outcomes, []
        for future, ok, value in outcomes:
            try:
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
            except InvalidStateError:
                pass  # cancelled meanwhile: the outcome is dropped
