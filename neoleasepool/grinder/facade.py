"""The work grinder: many small submissions, batched onto leased pools.

Callers hand the grinder small synchronous jobs; it queues them and forms a
*batch* when ``batch_size_threshold`` items are pending or the oldest has
waited ``max_wait_seconds``, and runs each batch under one lease from its
manager, several at once. :class:`WorkGrinder` is the facade over the parts
(``doc/architecture.md`` follows one item through them):

* ``items.py``: the items (they are their callers' futures) and their state
  machine;
* ``queue.py``: the queue and the batching rule;
* ``pipeline.py``: lease acquisition and pipelining;
* ``batches.py`` and ``chunks.py``: chunks sent to a lease and settled, one
  chunk kind per backend capability;
* ``handoff.py``: the thread hand-off that serves plain threads without the
  loop while an in-process lease is held.

Loop ownership: the async methods belong to the loop that called
:meth:`WorkGrinder.start`; other threads use :meth:`submit_from_thread` and
:meth:`stats_from_thread`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from .._util.loops import LoopBinding
from .._util.mailbox import Mailbox
from .._util.validation import check_duration, check_optional_timeout, check_positive_int
from ..backends.base import get_backend
from ..exceptions import LeasePoolNotStartedError, UnsupportedBackendError, WrongLoopError
from ..types import Stats
from .batches import Batches
from .chunking import ChunkPlanner
from .chunks import ChunkKind, chunk_kind
from .contracts import GrinderManager
from .handoff import Handoff
from .items import ENDED, INBOX, RUNNING, AsyncItem, Item, ThreadItem, forget_call
from .pipeline import Pipeline
from .queue import ItemQueue

__all__ = ["WorkGrinder"]

T = TypeVar("T")

_default_logger = logging.getLogger("neoleasepool.grinder")


class WorkGrinder:
    """Batches many small synchronous jobs onto leased executors.

    Args:
        executor_manager: A started manager to lease pools from.
        max_wait_seconds: Oldest pending item's longest wait before a batch
            forms anyway.
        batch_size_threshold: Pending items that form a batch at once; also
            the most items one batch holds.
        lease_seconds: Lease duration requested for each batch.
        owner_prefix: Prefix of the batch leases' owner labels.
        logger: Logger for lifecycle messages.
        chunk_size: Items per executor call; ``None`` (default) sizes chunks
            from measured item durations so that slow items run one per call
            and tiny ones are grouped.

    Raises:
        ValueError: If an argument is out of range; the message names it.
    """

    def __init__(
        self,
        *,
        executor_manager: GrinderManager,
        max_wait_seconds: float = 10.0,
        batch_size_threshold: int = 20,
        lease_seconds: float = 60.0,
        owner_prefix: str = "work-grinder",
        logger: logging.Logger | None = None,
        chunk_size: int | None = None,
    ) -> None:
        if not callable(getattr(executor_manager, "acquire", None)):
            raise ValueError(
                f"executor_manager must be a LeasedExecutorManager, got {executor_manager!r}"
            )
        self._manager = executor_manager
        self._max_wait = check_duration("max_wait_seconds", max_wait_seconds)
        self._threshold = check_positive_int("batch_size_threshold", batch_size_threshold)
        self._lease_seconds = check_duration("lease_seconds", lease_seconds)
        if not isinstance(owner_prefix, str) or not owner_prefix:
            raise ValueError(f"owner_prefix must be a non-empty string, got {owner_prefix!r}")
        self._owner_prefix = owner_prefix
        if logger is not None and not isinstance(logger, logging.Logger):
            raise ValueError(f"logger must be a logging.Logger or None, got {logger!r}")
        self._logger = logger or _default_logger
        fixed = None if chunk_size is None else check_positive_int("chunk_size", chunk_size)
        self._planner = ChunkPlanner(fixed)

        self._binding = LoopBinding("WorkGrinder")
        self._started = False
        self._queue = ItemQueue(self._threshold, self._max_wait)
        self._handoff = Handoff(self._given_back)
        self._inbox: Mailbox[ThreadItem] = Mailbox(self._take_inbox)
        self._batches: Batches | None = None
        self._pipeline: Pipeline | None = None
        self._batcher: asyncio.Task[None] | None = None
        self._crash: BaseException | None = None  # why the batcher died, if it did
        self._batch_numbers = itertools.count(1)
        self._counts_lock = threading.Lock()
        self._counts = dict.fromkeys(
            ("submitted", "batches", "leases", "completed", "failed", "cancelled"), 0
        )
        self._earlier_handoffs: dict[str, int] = {"lane_accepted": 0, "items_direct": 0}

    def __repr__(self) -> str:
        state = "stopping" if self._stopping else ("started" if self._started else "idle")
        batches = 0 if self._batches is None else len(self._batches.open)
        return (
            f"<WorkGrinder {state} pending={self._queue.pending} "
            f"batches_in_flight={batches} threshold={self._threshold}>"
        )

    @property
    def _stopping(self) -> bool:
        return self._batches is not None and self._batches.stopping and self._started

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Bind the grinder to the running loop and start batching.

        Raises:
            LeasePoolNotStartedError: If the manager is not started.
            WrongLoopError: If the manager or the grinder runs on another loop.
        """
        if self._started:
            self._binding.require_owner("start", "the loop that started it")
            return
        loop = self._binding.bind()
        if not getattr(self._manager, "started", True):
            self._binding.unbind()
            raise LeasePoolNotStartedError(
                "start the LeasedExecutorManager (await manager.start()) before the WorkGrinder"
            )
        if getattr(self._manager, "loop", loop) is not loop:
            self._binding.unbind()
            raise WrongLoopError(
                "WorkGrinder.start() must run on the loop that started its manager"
            )
        self._new_run(loop)
        self._started = True
        self._crash = None
        assert self._pipeline is not None
        self._batcher = loop.create_task(self._pipeline.run(), name=f"{self._owner_prefix}-batcher")
        self._batcher.add_done_callback(self._batcher_done)
        self._logger.info(
            "grinder started threshold=%s max_wait_seconds=%s", self._threshold, self._max_wait
        )

    def _new_run(self, loop: asyncio.AbstractEventLoop) -> None:
        """Fresh parts for a run: runners of an earlier run cannot serve this one."""
        for key, value in self._handoff.stats().items():
            if key in self._earlier_handoffs:
                self._earlier_handoffs[key] += value
        self._handoff = Handoff(self._given_back)
        batches = Batches(
            loop=loop,
            queue=self._queue,
            handoff=self._handoff,
            kind=self._chunk_kind(),
            planner=self._planner,
            workers=getattr(self._manager, "workers_per_pool", 1),
            wake=lambda: self._wake(),
            logger=self._logger,
        )
        self._batches = batches
        self._pipeline = Pipeline(
            manager=self._manager,
            queue=self._queue,
            batches=batches,
            handoff=self._handoff,
            lease_seconds=self._lease_seconds,
            owner_prefix=self._owner_prefix,
            logger=self._logger,
            counted=self._count,
            numbers=self._batch_numbers,
        )

    def _chunk_kind(self) -> ChunkKind:
        """Chunks by what the manager's backend can do; a manager of our own
        kind names one, a user's stand-in gets plain calls."""
        name = getattr(self._manager, "backend", None)
        try:
            backend = get_backend(name) if name is not None else None
        except (UnsupportedBackendError, ValueError, TypeError):
            backend = None
        if backend is None:
            return chunk_kind(in_process=False, pickles_calls=False)
        return chunk_kind(backend.in_process, backend.pickles_calls)

    async def stop(self, *, cancel_pending: bool = False) -> None:
        """Stop the grinder.

        By default queued work is drained: it still runs, and this returns
        once every item has ended. With ``cancel_pending=True`` queued and
        in-flight items are cancelled and batches waiting for a lease or for
        executor work are cancelled at once (callables already running in a
        thread still finish; their results are discarded).

        Raises:
            WrongLoopError: If awaited on another loop.
        """
        if not self._started:
            return
        self._binding.require_owner("stop", "task_supervisor.stop() or the blocking facade")
        batches, pipeline = self._batches, self._pipeline
        assert batches is not None and pipeline is not None and self._batcher is not None
        batches.stopping = True
        self._handoff.close(cancel=cancel_pending)  # runners finish their item and leave
        self._drain_inbox()
        if cancel_pending:
            batches.cancelling = True
            self._cancel_everything(batches, pipeline)
        pipeline.wake.set()
        await asyncio.gather(self._batcher, return_exceptions=True)
        # Wait only for workers still running: a finished one stays in the
        # set until its done-callback runs, and gather() of finished tasks
        # completes without yielding to the loop (Python 3.12+), which would
        # spin here forever.
        while running := [w for w in pipeline.workers if not w.done()]:
            await asyncio.gather(*running, return_exceptions=True)
        self._started = False
        batches.open.clear()  # a cancelling stop abandons batches mid-way
        self._batcher = None
        self._drain_inbox()
        self._binding.unbind()
        self._logger.info(
            "grinder stopped completed=%s failed=%s cancelled=%s",
            self._counts["completed"], self._counts["failed"], self._counts["cancelled"],
        )

    def _batcher_done(self, task: asyncio.Task[None]) -> None:
        """The batcher ended: normal at stop; anything else is a bug that
        must not leave items waiting for a batch that never comes."""
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        assert exc is not None
        self._crash = exc
        self._logger.error(
            "grinder batcher crashed; failing %s queued item(s) and refusing new "
            "ones until the grinder is restarted", self._queue.pending, exc_info=exc,
        )
        self._handoff.close()
        self._drain_inbox()
        assert self._batches is not None
        self._batches.fail(self._queue.take_all(), self._crashed_error())

    def _crashed_error(self) -> LeasePoolNotStartedError:
        error = LeasePoolNotStartedError(
            f"the WorkGrinder's batcher crashed ({self._crash!r}); stop() and start() "
            "the grinder again"
        )
        error.__cause__ = self._crash
        return error

    def _cancel_everything(self, batches: Batches, pipeline: Pipeline) -> None:
        for item in self._queue.take_all():
            self._cancel_item(item)
        for chunk in list(batches.chunks):
            chunk.cancel()
        for item in list(batches.running):
            self._cancel_item(item)
        batches.running.clear()
        if self._batcher is not None:
            self._batcher.cancel()
        pipeline.cancel()

    @staticmethod
    def _cancel_item(item: Item) -> None:
        """End ``item`` by cancelling it (it may have just been resolved)."""
        if item.state != RUNNING:  # a running in-process chunk may still read the call
            forget_call(item)
        item.state = ENDED
        item.cancel()  # counts itself; if it already ended, it was counted then

    # ----------------------------------------------------------- submitting

    async def submit(
        self, fn: Callable[..., T], /, *args: Any, owner: str | None = None, **kwargs: Any
    ) -> T:
        """Queue ``fn(*args, **kwargs)`` and wait for its result.

        ``owner`` is accepted for leasepool compatibility and is only a label.

        Raises:
            LeasePoolNotStartedError: If the grinder is not started or stopping.
            WrongLoopError: If awaited on another loop.
        """
        item = self._enqueue(fn, args, kwargs, "submit")
        result: T = await item
        return result

    async def enqueue(
        self, fn: Callable[..., T], /, *args: Any, owner: str | None = None, **kwargs: Any
    ) -> asyncio.Future[T]:
        """Queue ``fn(*args, **kwargs)`` and return its future at once.

        Cancelling the future while the item is queued removes it from the
        queue; it never runs.

        Raises:
            LeasePoolNotStartedError: If the grinder is not started or stopping.
            WrongLoopError: If awaited on another loop.
        """
        return self._enqueue(fn, args, kwargs, "enqueue")

    def _enqueue(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], method: str
    ) -> AsyncItem:
        loop = self._binding.loop
        if loop is None or not self._binding.on_loop_thread():
            if loop is None:
                raise LeasePoolNotStartedError(
                    f"WorkGrinder.{method}(): the grinder is not started; await grinder.start()"
                )
            self._binding.require_owner(method, "submit_from_thread()")
        if self._stopping:
            raise LeasePoolNotStartedError(f"WorkGrinder.{method}(): the grinder is stopping")
        if self._crash is not None:
            raise self._crashed_error()
        if not callable(fn):
            raise TypeError(f"WorkGrinder.{method}() needs a callable, got {fn!r}")
        assert loop is not None
        item = AsyncItem(self, fn, args, kwargs, loop)
        self._count("submitted")
        self._accept(item)
        return item

    def submit_from_thread(
        self, fn: Callable[..., T], /, *args: Any, owner: str | None = None, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        """Queue ``fn(*args, **kwargs)`` from another thread.

        Returns:
            A ``concurrent.futures.Future``; cancelling it while the item is
            queued removes the item.

        Raises:
            LeasePoolNotStartedError: If the grinder is not started or stopping.
            WrongLoopError: If called on the grinder's own loop thread (use
                ``await grinder.submit()`` there).
        """
        loop = self._binding.require_foreign_thread(
            "submit_from_thread", "await grinder.submit() or await grinder.enqueue()"
        )
        if loop is None or not self._started or self._stopping:
            raise LeasePoolNotStartedError(
                "WorkGrinder.submit_from_thread(): the grinder is not started or is stopping"
            )
        if self._crash is not None:
            raise self._crashed_error()
        if not callable(fn):
            raise TypeError(f"WorkGrinder.submit_from_thread() needs a callable, got {fn!r}")
        item = ThreadItem(self, fn, args, kwargs)
        if self._handoff.offer(item):
            return item  # a runner on a held lease takes it (handoff.py)
        try:
            self._inbox.post(loop, item)
        except RuntimeError:
            raise LeasePoolNotStartedError(
                "WorkGrinder.submit_from_thread(): the grinder's loop is closed"
            ) from None
        return item

    def _drain_inbox(self) -> None:
        self._take_inbox(self._inbox.take())

    def _take_inbox(self, items: list[ThreadItem], counted: bool = False) -> None:
        """On the loop: ``INBOX`` items from other threads go to the hand-off
        or the queue (``counted``: handed back, counted as submitted once)."""
        batcher = self._batcher
        accepting = self._started and batcher is not None and not batcher.done()
        cancelling = self._batches is not None and self._batches.cancelling
        for item in items:
            if not counted:
                self._count("submitted")
            if item.cancelled():
                item.state = ENDED  # its cancel() counted it
            elif not accepting or cancelling:
                self._refuse(item, cancelling)
            elif not self._handoff.offer(item, new=False):
                self._accept(item)

    def _refuse(self, item: ThreadItem, cancelling: bool) -> None:
        if cancelling:
            self._cancel_item(item)
            return
        item.state = ENDED
        error = (
            self._crashed_error() if self._crash is not None
            else LeasePoolNotStartedError("the WorkGrinder stopped")
        )
        item.resolve((False, error))

    def _given_back(self, items: list[ThreadItem]) -> None:
        """Items the hand-off accepted but no runner will run (any thread):
        back to the loop, as if just submitted."""
        for item in items:
            item.state = INBOX
        loop = self._binding.loop
        try:
            if loop is None:
                raise RuntimeError("the grinder has no loop")
            if self._binding.on_loop_thread():
                self._take_inbox(items, counted=True)
            else:
                loop.call_soon_threadsafe(self._take_inbox, items, True)
        except RuntimeError:
            for item in items:
                item.state = ENDED
                item.resolve((False, LeasePoolNotStartedError("the WorkGrinder stopped")))

    def _accept(self, item: Item) -> None:
        if self._queue.append(item):
            self._wake()

    def _wake(self) -> None:
        if self._pipeline is not None:
            self._pipeline.wake.set()

    # ------------------------------------------------------ the items' sink

    def item_ended(self, how: str) -> None:
        """An item's future reached its final state (any thread)."""
        self._count(how)

    def _count(self, what: str) -> None:
        with self._counts_lock:
            self._counts[what] += 1

    def item_cancelled(self, item: Item) -> None:
        """The caller cancelled ``item`` (its thread): its owner drops it."""
        if type(item) is ThreadItem:
            self._handoff.withdraw(item)
        loop = self._binding.loop
        if loop is None:
            return
        if self._binding.on_loop_thread():
            self._drop(item)
            return
        try:
            loop.call_soon_threadsafe(self._drop, item)
        except RuntimeError:
            pass  # loop closed: the grinder is gone, nothing to remove

    def _drop(self, item: Item) -> None:
        """On the loop: forget a cancelled item it owns (``INBOX`` items are
        dropped as the inbox is drained)."""
        if self._queue.drop(item):
            return
        if item.state == RUNNING and self._batches is not None and item in self._batches.running:
            item.state = ENDED
            self._batches.running.discard(item)

    # ------------------------------------------------------------ diagnostics

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
        with self._counts_lock:
            counts = dict(self._counts)
        handoff = self._handoff.stats()
        for key, earlier in self._earlier_handoffs.items():
            handoff[key] += earlier
        return {
            "started": self._started,
            "stopping": self._stopping,
            "pending": self._queue.pending,
            "batch_size_threshold": self._threshold,
            "max_wait_seconds": self._max_wait,
            "lease_seconds": self._lease_seconds,
            "oldest_wait_seconds": self._queue.oldest_wait(),
            "batches_in_flight": 0 if batches is None else len(batches.open),
            "leases_held": 0 if pipeline is None else len(pipeline.workers),
            "running": 0 if batches is None else len(batches.running),
            "items_submitted": counts["submitted"] + handoff.pop("lane_accepted"),
            "items_completed": counts["completed"],
            "items_failed": counts["failed"],
            "items_cancelled": counts["cancelled"],
            "batches_run": counts["batches"],
            "leases_acquired": counts["leases"],
            "chunking": "auto" if self._planner.fixed is None else self._planner.fixed,
            "avg_item_seconds": self._planner.avg_item_seconds,
            **handoff,
        }

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
        loop = self._binding.require_foreign_thread(
            "stats_from_thread", "stats() or await astats()"
        )
        if loop is None or not self._started:
            raise LeasePoolNotStartedError(
                "WorkGrinder.stats_from_thread(): the grinder is not started"
            )
        answer: concurrent.futures.Future[Stats] = concurrent.futures.Future()

        def _snapshot() -> None:
            if answer.set_running_or_notify_cancel():
                answer.set_result(self.stats())

        loop.call_soon_threadsafe(_snapshot)
        return answer.result(timeout)
