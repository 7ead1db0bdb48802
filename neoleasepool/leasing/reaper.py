"""Shutting pools down off the event loop, and joining them at stop.

Shutting an executor down with ``wait=True`` joins its threads or worker
processes and can take a while, so it must not run on the event loop; it
must not run inside a future's done-callback either (that callback may be
on the very thread being joined).  And ``shutdown(wait=False)`` is no
answer: on a ``ProcessPoolExecutor`` it drops the handle on its management
thread, which then outlives the stop.

So every retired pool gets a short-lived thread that shuts it down with
``wait=True``; :meth:`PoolReaper.join` waits for all of them, and the
manager calls it (from a helper thread) when it stops.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Executor

from ..backends.base import BackendSession

__all__ = ["PoolReaper"]


class PoolReaper:
    """Retires pools in background threads and joins those threads on demand.

    Args:
        session: The backend session that knows how to stop its pools.
        name: Prefix for the reaper threads' names.
        logger: Where shutdown failures are reported.
    """

    def __init__(self, session: BackendSession, name: str, logger: logging.Logger) -> None:
        self._session = session
        self._name = name
        self._logger = logger
        self._threads: dict[threading.Thread, Executor] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<PoolReaper {self._name} retiring={self.retiring}>"

    @property
    def retiring(self) -> int:
        """How many pools are still being shut down."""
        with self._lock:
            return sum(1 for t in self._threads if t.is_alive())

    def retire(self, executor: Executor, *, terminate: bool, cancel_futures: bool) -> None:
        """Shut ``executor`` down in a new thread.

        Args:
            executor: The pool to shut down.
            terminate: Kill its running work first (where the backend can).
            cancel_futures: Cancel work that has not started.
        """
        thread = threading.Thread(
            target=self._shutdown,
            args=(executor, terminate, cancel_futures),
            name=f"{self._name}-reaper",
            daemon=True,
        )
        with self._lock:
            self._threads = {t: e for t, e in self._threads.items() if t.is_alive()}
            self._threads[thread] = executor
        thread.start()

    def _shutdown(self, executor: Executor, terminate: bool, cancel_futures: bool) -> None:
        try:
            if terminate:
                self._session.terminate(executor)
            self._session.shutdown(executor, cancel_futures=cancel_futures)
        except Exception:
            self._logger.warning("pool shutdown failed executor=%r", executor, exc_info=True)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for every retirement started so far.

        Returns:
            Whether all of them finished within ``timeout``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._threads = {t: e for t, e in self._threads.items() if t.is_alive()}
            return not self._threads

    def executors(self) -> list[Executor]:
        """The pools still being shut down."""
        with self._lock:
            return [e for t, e in self._threads.items() if t.is_alive()]

    def terminate_remaining(self) -> None:
        """Kill the running work of every pool still shutting down (where
        the backend can: process workers; threads cannot be killed)."""
        for executor in self.executors():
            try:
                self._session.terminate(executor)
            except Exception:
                self._logger.warning(
                    "pool terminate failed executor=%r", executor, exc_info=True
                )
