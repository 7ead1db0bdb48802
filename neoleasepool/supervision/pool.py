"""The supervisor's task pool and the pools it retired (private).

A :class:`SupervisorPool` holds the executor behind ``TaskSupervisor.spawn``.
The supervisor owns that executor, whoever created it: a pool replaced at
run time keeps running the work queued on it, and every pool it ever held
is shut down *and joined* when the supervisor stops.  A retired
``ProcessPoolExecutor`` is not shut down early, because
``shutdown(wait=False)`` drops its handle on the management thread and a
later ``shutdown(wait=True)`` could no longer join it.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from .._util.validation import check_positive_int
from ..types import Stats

__all__ = ["SupervisorPool", "default_max_size"]

logger = logging.getLogger("neoleasepool.supervisor")

P = ParamSpec("P")
T = TypeVar("T")

#: Seconds prespawned threads wait for each other before giving up.
PRESPAWN_TIMEOUT_SECONDS = 5.0


def default_max_size() -> int:
    """The default pool size: five threads per CPU."""
    return (os.cpu_count() or 1) * 5


class SupervisorPool:
    """The current executor, its configured sizes and the retired executors.

    Args:
        thread_name_prefix: Prefix of the threads of pools it creates.
    """

    def __init__(self, thread_name_prefix: str) -> None:
        self._prefix = thread_name_prefix
        self._lock = threading.RLock()
        self._retired: list[concurrent.futures.Executor] = []
        self._closed = False
        self.min_size = 0
        self.max_size = default_max_size()
        self._user_pool = False
        self.executor: concurrent.futures.Executor = self._new_thread_pool()

    def __repr__(self) -> str:
        return (
            f"<SupervisorPool {type(self.executor).__name__} "
            f"{self.min_size}/{self.max_size} retired={len(self._retired)}"
            f"{' closed' if self._closed else ''}>"
        )

    def _new_thread_pool(self) -> concurrent.futures.ThreadPoolExecutor:
        return concurrent.futures.ThreadPoolExecutor(
            max_workers=self.max_size, thread_name_prefix=self._prefix
        )

    def configure(
        self,
        min_size: int | str | None,
        max_size: int | None,
        pool: concurrent.futures.Executor | None,
        *,
        running: bool,
    ) -> None:
        """Validate sizes and install a new executor, retiring the old one.

        Args:
            min_size: Threads to prespawn: ``None`` (0), a count, or ``"max"``.
            max_size: Largest pool size; ``None`` for :func:`default_max_size`.
            pool: An executor to use instead of a new thread pool.
            running: Whether the supervisor runs (prespawn at once).

        Raises:
            ValueError: If a size is not a whole number in range, or
                ``max_size < min_size``.
            TypeError: If ``pool`` is not a ``concurrent.futures.Executor``.
        """
        maximum = (
            default_max_size()
            if max_size is None
            else check_positive_int("max_size", max_size)
        )
        if pool is not None and max_size is None:
            maximum = int(getattr(pool, "_max_workers", maximum))
        if min_size is None:
            minimum = 0
        elif min_size == "max":
            minimum = maximum
        else:
            minimum = check_positive_int("min_size", min_size, minimum=0)
        if maximum < minimum:
            raise ValueError(
                f"max_size ({maximum}) must be >= min_size ({minimum}); raise "
                f"max_size or pass min_size='max'"
            )
        if pool is not None and not isinstance(pool, concurrent.futures.Executor):
            raise TypeError(
                f"pool must be a concurrent.futures.Executor, got {type(pool).__name__}"
            )
        with self._lock:
            old, was_closed = self.executor, self._closed
            self.min_size, self.max_size = minimum, maximum
            self._user_pool = pool is not None
            self.executor = pool if pool is not None else self._new_thread_pool()
            self._closed = False
            if old is not self.executor and not was_closed:
                self._retire_locked(old)
            if running:
                self.prespawn_locked()

    def _retire_locked(self, old: concurrent.futures.Executor) -> None:
        self._retired.append(old)
        if isinstance(old, concurrent.futures.ThreadPoolExecutor):
            # Its threads finish the queued work, then exit; stop joins them.
            old.shutdown(wait=False)

    def prespawn(self) -> None:
        """Start ``min_size`` threads now (thread pools only)."""
        with self._lock:
            self.prespawn_locked()

    def prespawn_locked(self) -> None:
        """:meth:`prespawn` with the lock held."""
        executor = self.executor
        count = min(self.min_size, self.max_size)
        if count <= 0 or not isinstance(
            executor, concurrent.futures.ThreadPoolExecutor
        ):
            return
        # Each task waits until all have started, so each runs in a thread
        # of its own; the barrier replaces neotasker's sleep.
        barrier = threading.Barrier(count)
        for _ in range(count):
            executor.submit(_meet, barrier)

    def ensure_open(self) -> None:
        """After a stop, install a fresh thread pool with the same sizes."""
        with self._lock:
            if self._closed:
                if self._user_pool:
                    logger.debug("supervisor pool: user pool was shut down, new pool")
                self._user_pool = False
                self.executor = self._new_thread_pool()
                self._closed = False

    def submit(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> concurrent.futures.Future[T]:
        """Submit to the current executor (never to a retired one)."""
        with self._lock:
            return self.executor.submit(fn, *args, **kwargs)

    def owns_thread(self, thread: threading.Thread) -> bool:
        """Whether ``thread`` is a worker thread of a pool held here."""
        with self._lock:
            pools = [self.executor, *self._retired]
        return any(thread in getattr(p, "_threads", ()) for p in pools)

    def shutdown(self, cancel_futures: bool = False) -> None:
        """Shut down and join the current executor and every retired one.

        Must not run on a pool thread (it would join itself).
        """
        with self._lock:
            pools = [*self._retired, self.executor]
            self._retired = []
            self._closed = True
        for pool in pools:
            try:
                pool.shutdown(wait=True, cancel_futures=cancel_futures)
            except Exception:
                logger.exception("supervisor pool failed to shut down pool=%r", pool)

    @property
    def closed(self) -> bool:
        """Whether :meth:`shutdown` ran since the last executor was installed."""
        return self._closed

    def stats(self) -> Stats:
        """A JSON-serialisable snapshot of the pool configuration."""
        executor = self.executor
        threads: Any = getattr(executor, "_threads", None)
        return {
            "kind": type(executor).__name__,
            "min_size": self.min_size,
            "max_size": self.max_size,
            "threads": len(threads) if threads is not None else None,
            "retired": len(self._retired),
            "closed": self._closed,
        }


def _meet(barrier: threading.Barrier) -> None:
    try:
        barrier.wait(PRESPAWN_TIMEOUT_SECONDS)
    except threading.BrokenBarrierError:
        logger.debug("supervisor pool prespawn: not every thread could start")
