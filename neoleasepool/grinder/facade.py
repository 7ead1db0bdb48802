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
  loop while an in-process lease is held;
* ``map_api.py``, ``mapping.py``, ``map_inputs.py``: ``map``, many inputs
  as self-sizing chunks (its methods, its runs, its inputs);
* ``options.py``: the arguments, checked at construction;
* ``faults.py``: one failure of our own code breaks the run, visibly;
* ``overtime.py``: the time limits the grinder keeps itself;
* ``stats_api.py``: ``stats()`` and its forms for other loops and threads.

Loop ownership: the async methods belong to the loop that called
:meth:`WorkGrinder.start`; other threads use :meth:`submit_from_thread` and
:meth:`stats_from_thread`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from .._util.limits import Limits, TimeLimited, split_limits
from .._util.loops import LoopBinding
from ..exceptions import LeasePoolNotStartedError, WrongLoopError
from .batches import Batches
from .chunking import ChunkPlanner
from .chunks import chunk_kind_for
from .contracts import GrinderManager, ManagerFacts
from .faults import Breaker
from .intake import Intake
from .items import ENDED, AsyncItem, ThreadItem, TimedAsyncItem, TimedThreadItem
from .map_api import MapMethods
from .mapping import MapRuns
from .options import grinder_options
from .pipeline import Pipeline
from .queue import ItemQueue
from .stats_api import StatsMethods

__all__ = ["WorkGrinder"]

T = TypeVar("T")

#: leasepool 0.1.3's words for an async method awaited on another loop.
_WRONG_LOOP = (
    "WorkGrinder async methods must be called from its owning event loop; "
    "use submit_from_thread() or stats_from_thread() from other threads."
)


class WorkGrinder(MapMethods, StatsMethods):
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
        item_timeout: Default hard time limit of each item, in seconds
            (``None``: none), counted from when it starts running; a
            function wrapped in :func:`~neoleasepool.time_limited` brings
            its own. See ``doc/limits.md``.
        metrics: Time each item (its queue, run and latency seconds, as
            histograms: :meth:`item_timings`, and the supervisor's
            metrics). ``False`` keeps only the counts, which are always on.

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
        item_timeout: float | None = None,
        metrics: bool = True,
    ) -> None:
        if not callable(getattr(executor_manager, "acquire", None)):
            raise ValueError(
                f"executor_manager must be a LeasedExecutorManager, got {executor_manager!r}"
            )
        self._manager = executor_manager
        self._options = options = grinder_options(
            max_wait_seconds=max_wait_seconds, batch_size_threshold=batch_size_threshold,
            lease_seconds=lease_seconds, owner_prefix=owner_prefix, logger=logger,
            chunk_size=chunk_size, item_timeout=item_timeout, metrics=metrics,
        )
        self._logger = options.logger
        self._planner = ChunkPlanner(options.chunk_size)

        self._binding = LoopBinding("WorkGrinder", _WRONG_LOOP)
        self._started = False
        self._queue = ItemQueue(self._options.threshold, self._options.max_wait)
        self._breaker = Breaker(self._binding, self._logger)  # the current run's
        self._intake = Intake(
            self._binding, self._queue, self._wake, self._refusal,
            lambda: self._batches is not None and self._batches.cancelling,
            lambda where, exc: self._breaker.report(where, exc),
            timing=options.metrics,
        )
        self._pipeline: Pipeline | None = None
        self._batcher: asyncio.Task[None] | None = None
        self._batch_numbers = itertools.count(1)
        self._maps = MapRuns()

    @property
    def executor_manager(self) -> GrinderManager:
        """The manager this grinder leases from."""
        return self._manager

    def __repr__(self) -> str:
        state = "stopping" if self._stopping else ("started" if self._started else "idle")
        if self._breaker.broken and self._started:
            state = "broken"
        batches = 0 if self._batches is None else len(self._batches.open)
        return (
            f"<WorkGrinder {state} pending={self._queue.pending} "
            f"batches_in_flight={batches} threshold={self._options.threshold}>"
        )

    @property
    def _batches(self) -> Batches | None:
        """This run's batches (``None`` before the first start)."""
        return None if self._pipeline is None else self._pipeline.batches

    @property
    def _stopping(self) -> bool:
        return self._batches is not None and self._batches.stopping and self._started

    def _state(self) -> str:
        """``idle`` (never started), ``running``, ``broken``, ``stopping`` or
        ``stopped``."""
        if not self._started:
            return "idle" if self._pipeline is None else "stopped"
        if self._breaker.broken:
            return "broken"
        return "stopping" if self._stopping else "running"

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Bind the grinder to the running loop and start batching.

        Raises:
            LeasePoolNotStartedError: If the manager is not started.
            WrongLoopError: If the manager or the grinder runs on another loop.
        """
        if self._started:
            if asyncio.get_running_loop() is not self._binding.loop:
                raise WrongLoopError(
                    "WorkGrinder is already started on a different event loop "
                    "(stop() it there before starting it on this one)"
                )
            return
        loop = self._binding.bind()
        facts = ManagerFacts(self._manager)
        if not facts.started:
            self._binding.unbind()
            raise LeasePoolNotStartedError(
                "start the LeasedExecutorManager (await manager.start()) before the WorkGrinder"
            )
        if facts.loop is not None and facts.loop is not loop:
            self._binding.unbind()
            raise WrongLoopError(
                "WorkGrinder.start() must run on the loop that started its manager"
            )
        self._new_run(facts)
        self._started = True
        assert self._pipeline is not None
        self._batcher = self._pipeline.start_batcher(f"{self._options.owner_prefix}-batcher")
        self._batcher.add_done_callback(self._batcher_done)
        self._logger.info(
            "grinder started threshold=%s max_wait_seconds=%s",
            self._options.threshold, self._options.max_wait,
        )

    def _new_run(self, facts: ManagerFacts) -> None:
        """Fresh parts for a run: runners of an earlier run cannot serve this one."""
        intake = self._intake
        intake.renew_handoff()
        kind = chunk_kind_for(facts.backend)
        intake.carries_context = kind.in_process
        self._lendable_workers = facts.pools * facts.workers  # map's default window
        breaker = Breaker(self._binding, self._logger)
        pipeline = Pipeline(
            manager=self._manager,
            queue=self._queue,
            intake=intake,
            kind=kind,
            planner=self._planner,
            workers=facts.workers,
            lease_seconds=self._options.lease_seconds,
            owner_prefix=self._options.owner_prefix,
            logger=self._logger,
            numbers=self._batch_numbers,
            fault=breaker.report,
        )
        breaker.attach(
            pipeline.break_down, lambda: self._started and self._pipeline is pipeline
        )
        self._pipeline, self._breaker = pipeline, breaker

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
        assert self._pipeline is not None and self._batcher is not None
        self._maps.halt_all()  # their chunks out drain (or are cancelled) below
        await self._pipeline.stop(self._batcher, cancel=cancel_pending)
        self._started = False
        self._batcher = None
        self._binding.unbind()
        counts = self._intake.counts()
        self._logger.info(
            "grinder stopped completed=%s failed=%s cancelled=%s",
            counts["completed"], counts["failed"], counts["cancelled"],
        )

    def _batcher_done(self, task: asyncio.Task[None]) -> None:
        """The batcher ended: normal at stop; anything else is a bug."""
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            assert exc is not None
            self._breaker.broke("its batcher", exc)

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
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        method: str,
        kind: type[AsyncItem] = AsyncItem,
        limits: Limits | None = None,
    ) -> AsyncItem:
        loop = self._require_open(method)
        if not callable(fn):
            raise TypeError(f"WorkGrinder.{method}() needs a callable, got {fn!r}")
        if kind is AsyncItem and (type(fn) is TimeLimited or self._options.item_timeout):
            fn, limits = split_limits(fn, self._options.item_timeout)
        if limits is None:
            item = kind(self._intake, fn, args, kwargs, loop)
        else:
            timed = TimedAsyncItem if kind is AsyncItem else kind
            item = timed(self._intake, fn, args, kwargs, loop, limits)  # type: ignore[call-arg]
        self._intake.count("submitted")
        try:
            self._intake.accept(item)
        except Exception as exc:  # a bug: break the run, end the item, say why
            self._breaker.broke("queueing an item", exc)
            error = self._breaker.error()
            if not item.done():
                item.state = ENDED
                item.resolve((False, error))
                item.exception()  # the caller gets the error raised, not the future
            raise error from exc
        return item

    def _require_open(self, method: str) -> asyncio.AbstractEventLoop:
        """The grinder's loop, if ``method`` may queue work now (on that loop).

        Raises:
            LeasePoolNotStartedError: If not started, stopping or broken.
            WrongLoopError: If called from another loop or thread.
        """
        loop = self._binding.loop
        if loop is None or not self._binding.on_loop_thread():
            if loop is None:
                raise LeasePoolNotStartedError(
                    f"WorkGrinder is not started (WorkGrinder.{method}() needs "
                    "await grinder.start() first)"
                )
            self._binding.require_owner(method, "submit_from_thread()")
        if self._stopping:
            raise LeasePoolNotStartedError(
                f"WorkGrinder is stopping (WorkGrinder.{method}() takes no new items now)"
            )
        if self._breaker.broken:
            raise self._breaker.error()
        assert loop is not None
        return loop

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
            state = "stopping" if self._stopping else "not started"
            raise LeasePoolNotStartedError(
                f"WorkGrinder is {state} (WorkGrinder.submit_from_thread() takes no "
                "items now)"
            )
        if self._breaker.broken:
            raise self._breaker.error()
        if not callable(fn):
            raise TypeError(f"WorkGrinder.submit_from_thread() needs a callable, got {fn!r}")
        item: ThreadItem
        if type(fn) is TimeLimited or self._options.item_timeout:
            fn, limits = split_limits(fn, self._options.item_timeout)
            item = TimedThreadItem(self._intake, fn, args, kwargs, limits)
        else:
            item = ThreadItem(self._intake, fn, args, kwargs)
        try:
            self._intake.from_thread(item, loop)
        except RuntimeError:
            raise LeasePoolNotStartedError(
                "WorkGrinder.submit_from_thread(): the grinder's loop is closed"
            ) from None
        return item

    def _wake(self) -> None:
        if self._pipeline is not None:
            self._pipeline.wake.set()

    def _refusal(self) -> BaseException | None:
        """Why new items cannot be queued now (loop thread), or ``None``."""
        if self._breaker.broken:
            return self._breaker.error()
        batcher = self._batcher
        if self._started and batcher is not None and not batcher.done():
            return None
        return LeasePoolNotStartedError("the WorkGrinder stopped")
