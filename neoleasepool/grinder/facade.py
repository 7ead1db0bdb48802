"""The work grinder: many small submissions, batched onto leased pools (layer 2).

Callers hand the grinder small synchronous jobs; the grinder queues them and
forms a *batch* when ``batch_size_threshold`` items are pending or the oldest
has waited ``max_wait_seconds``.  Each batch runs under one lease from the
:class:`~neoleasepool.manager.LeasedExecutorManager`.

Unlike a batcher that runs one batch at a time, this one keeps every pool
busy: a backlog becomes several batches of at most ``batch_size_threshold``
items, which run concurrently on as many leases as the manager can lend,
while the grinder keeps forming batches.  A lease that finishes its batch
with more work ready takes the next batch at once instead of going back to
the manager.  Inside a batch, items run in chunks sized by
:class:`~neoleasepool._chunking.ChunkPlanner`; every caller's future
resolves as soon as its own chunk finishes (slow items run one per chunk).
On an in-process (thread) lease, a batch holding items from other threads
also starts runners on the lease's workers, which take further thread
submissions straight from their callers while the lease is held (see
:mod:`neoleasepool._lane`).

Loop ownership: the async methods belong to the loop that called
:meth:`WorkGrinder.start`; other threads use :meth:`submit_from_thread` and
:meth:`stats_from_thread`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import itertools
import logging
import pickle
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from .._util.loops import LoopBinding
from .._util.mailbox import Mailbox
from .._util.validation import check_duration, check_optional_timeout, check_positive_int
from ..exceptions import LeaseExpiredError, LeasePoolNotStartedError, WrongLoopError
from ..leasing.lease import ExecutorLease
from ..leasing.manager import LeasedExecutorManager
from ..types import Stats
from .chunking import ChunkPlanner
from .items import (
    ENDED,
    INBOX,
    QUEUED,
    RUNNING,
    AsyncItem,
    Item,
    ThreadItem,
    run_calls,
    run_calls_pickled,
    run_items,
)
from .lane import LINGER_SECONDS, DirectLane, LaneRunner

__all__ = ["WorkGrinder"]

T = TypeVar("T")

_default_logger = logging.getLogger("neoleasepool.grinder")

_CANCELLED = (asyncio.CancelledError, concurrent.futures.CancelledError)


class _Load:
    """Calls out on one lease, across its batches; ``spare`` is how many may
    still be out when its worker feeds it the next batch."""

    __slots__ = ("outstanding", "room", "spare")

    def __init__(self, spare: int) -> None:
        self.spare = spare
        self.outstanding = 0
        self.room: asyncio.Future[None] | None = None

    async def wait_for_room(self) -> None:
        """Return once at most ``spare`` calls are out."""
        if self.outstanding > self.spare:
            self.room = asyncio.get_running_loop().create_future()
            await self.room

    def settled(self) -> None:
        self.outstanding -= 1
        if self.room is not None and self.outstanding <= self.spare and not self.room.done():
            self.room.set_result(None)


class _Batch:
    """Calls (chunks and lane runners) running under one lease; ``done`` is
    set once none is out."""

    __slots__ = ("done", "lease", "load", "open", "outstanding", "refused", "runners")

    def __init__(self, lease: ExecutorLease, load: _Load, open_batches: set[_Batch]) -> None:
        self.lease = lease
        self.load = load
        self.open = open_batches  # the grinder's batches in flight (this run's)
        self.outstanding = 0
        self.runners = False  # lane runners serve from its lease's workers
        self.refused = False  # its lease refused a call: feed that lease no more
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def sent(self) -> None:
        """One more call of the batch was handed to the lease."""
        self.outstanding += 1
        self.load.outstanding += 1

    def settled(self) -> None:
        """One of the batch's calls ended."""
        self.outstanding -= 1
        self.load.settled()
        if self.outstanding <= 0:
            self.close()

    def close(self) -> None:
        """No call of the batch is out any more."""
        self.open.discard(self)
        if not self.done.done():
            self.done.set_result(None)


#: A finished chunk on its way to the loop: its future, items, batch, the
#: failure of the call itself (if any), how many items ran in how many
#: seconds, and whether it was never sent (see
#: :meth:`WorkGrinder._settle_chunk`).
_Finished = tuple[
    "concurrent.futures.Future[Any]", "list[Item]", _Batch, "BaseException | None",
    "tuple[int, float] | None", bool,
]


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
        executor_manager: LeasedExecutorManager,
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
        self._stopping = False
        self._cancelling = False
        self._queue: deque[Item] = deque()
        self._pending = 0
        self._wake: asyncio.Event | None = None
        self._batcher: asyncio.Task[None] | None = None
        self._crash: BaseException | None = None  # why the batcher died, if it did
        self._workers: set[asyncio.Task[None]] = set()
        self._open_batches: set[_Batch] = set()
        self._running: set[Item] = set()
        self._chunks: set[concurrent.futures.Future[Any]] = set()
        self._inbox: Mailbox[ThreadItem] = Mailbox(self._take_inbox)
        self._finished: Mailbox[_Finished] = Mailbox(self._settle_chunks)
        self._lane = DirectLane(self._lane_leftovers, self._lane_ready)
        self._served_before = 0
        self._lane_watch: asyncio.TimerHandle | None = None
        self._batch_numbers = itertools.count(1)
        self._in_process = False
        self._pickled = False
        self._ends_lock = threading.Lock()
        self._ends = dict.fromkeys(("completed", "failed", "cancelled"), 0)
        self._counts = dict.fromkeys(
            ("submitted", "batches", "leases"), 0
        )

    def __repr__(self) -> str:
        state = "stopping" if self._stopping else ("started" if self._started else "idle")
        return (
            f"<WorkGrinder {state} pending={self._pending} "
            f"batches_in_flight={len(self._open_batches)} threshold={self._threshold}>"
        )

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
        manager_loop = getattr(self._manager, "loop", loop)
        if not getattr(self._manager, "started", True):
            self._binding.unbind()
            raise LeasePoolNotStartedError(
                "start the LeasedExecutorManager (await manager.start()) before the WorkGrinder"
            )
        if manager_loop is not loop:
            self._binding.unbind()
            raise WrongLoopError(
                "WorkGrinder.start() must run on the loop that started its manager"
            )
        backend = getattr(self._manager, "backend", None)
        # A fresh lane per run: runners of an earlier run cannot serve this one.
        self._counts["submitted"] += self._lane.offered
        self._served_before += self._lane.served
        self._lane = DirectLane(self._lane_leftovers, self._lane_ready)
        self._in_process = backend == "thread"
        self._pickled = backend in ("process", "interpreter")
        self._wake = asyncio.Event()
        self._stopping = self._cancelling = False
        self._started = True
        self._crash = None
        self._batcher = loop.create_task(self._batch_loop(), name=f"{self._owner_prefix}-batcher")
        self._batcher.add_done_callback(self._batcher_done)
        self._logger.info(
            "grinder started threshold=%s max_wait_seconds=%s", self._threshold, self._max_wait
        )

    async def stop(self, *, cancel_pending: bool = False) -> None:
        """Stop the grinder.

        By default queued work is drained: it still runs, and this returns
        once every item has ended.  With ``cancel_pending=True`` queued and
        in-flight items are cancelled and batches waiting for a lease or for
        executor work are cancelled at once (callables already running in a
        thread still finish; their results are discarded).

        Raises:
            WrongLoopError: If awaited on another loop.
        """
        if not self._started:
            return
        self._binding.require_owner("stop", "task_supervisor.stop() or the blocking facade")
        self._stopping = True
        self._lane.close()  # its runners finish what it holds, then leave
        self._unwatch_lane()
        self._drain_inbox()
        if cancel_pending:
            self._cancelling = True
            self._cancel_everything()
        assert self._wake is not None and self._batcher is not None
        self._wake.set()
        await asyncio.gather(self._batcher, return_exceptions=True)
        # Wait only for workers still running: a finished one stays in the
        # set until its done-callback runs, and gather() of finished tasks
        # completes without yielding to the loop (Python 3.12+), which would
        # spin here forever.
        while running := [w for w in self._workers if not w.done()]:
            await asyncio.gather(*running, return_exceptions=True)
        self._started = False
        self._stopping = False  # stopped now, no longer stopping
        self._open_batches = set()  # a cancelling stop abandons batches mid-way
        self._batcher = None
        self._drain_inbox()
        self._binding.unbind()
        self._logger.info(
            "grinder stopped completed=%s failed=%s cancelled=%s",
            self._ends["completed"], self._ends["failed"], self._ends["cancelled"],
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
            "ones until the grinder is restarted", self._pending, exc_info=exc,
        )
        self._drain_inbox()
        error = self._crashed_error()
        while self._queue:
            item = self._queue.popleft()
            if item.state == QUEUED:
                self._pending -= 1
                item.state = RUNNING
                self._end(item, (False, error))

    def _crashed_error(self) -> LeasePoolNotStartedError:
        error = LeasePoolNotStartedError(
            f"the WorkGrinder's batcher crashed ({self._crash!r}); stop() and start() "
            "the grinder again"
        )
        error.__cause__ = self._crash
        return error

    def _cancel_everything(self) -> None:
        self._lane.close(cancel=True)
        while self._queue:
            item = self._queue.popleft()
            if item.state == QUEUED:
                item.state = ENDED
                self._pending -= 1
                self._count_cancel(item)
        for chunk in list(self._chunks):
            chunk.cancel()
        for item in list(self._running):
            self._count_cancel(item)
        self._running.clear()
        if self._batcher is not None:
            self._batcher.cancel()
        for worker in self._workers:
            worker.cancel()

    def _count_cancel(self, item: Item) -> None:
        """End ``item`` by cancelling it (it may have just been resolved)."""
        if item.state != RUNNING:  # a running in-process chunk may still read the call
            item.fn, item.args, item.kwargs = None, (), {}
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
        if self._lane.offer(item):
            return item  # a runner on a held lease takes it (see _lane.py)
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
        """On the loop: queue items from other threads (``counted``: the lane
        counted them as submitted already)."""
        batcher = self._batcher
        accepting = self._started and batcher is not None and not batcher.done()
        lane = self._lane
        for item in items:
            if accepting and not self._cancelling and not item.cancelled():
                if lane.is_open and lane.offer(item, new=not counted):
                    continue  # runners serve other threads' items now: no batch needed
                item.state = QUEUED
                self._accept(item, counted)
                continue
            if not counted:
                self._counts["submitted"] += 1
            if item.cancelled():
                item.state = ENDED  # its cancel hop (INBOX or ENDED) finds nothing to do
            elif self._cancelling:
                self._count_cancel(item)
            else:
                item.state = ENDED
                error = (
                    self._crashed_error() if self._crash is not None
                    else LeasePoolNotStartedError("the WorkGrinder stopped")
                )
                item.resolve((False, error))

    def _lane_leftovers(self, items: list[ThreadItem], expired: bool) -> None:
        """Items the lane took but no runner will run (any thread): fail them
        if their runner's lease ended (as calls queued on a revoked lease
        fail), else queue them on the loop, or fail them if it is gone."""
        if expired:
            for item in items:
                item.state = ENDED
                item.resolve((False, LeaseExpiredError(
                    "the grinder's lease ended (revoked after its hard expiry, or its "
                    "manager stopped) before this item ran"
                )))
            return
        loop = self._binding.loop
        try:
            if loop is None:
                raise RuntimeError("the grinder has no loop")
            loop.call_soon_threadsafe(self._take_inbox, items, True)
        except RuntimeError:
            for item in items:
                item.state = ENDED
                item.resolve((False, LeasePoolNotStartedError("the WorkGrinder stopped")))

    def _accept(self, item: Item, counted: bool = False) -> None:
        self._queue.append(item)
        self._pending += 1
        if not counted:
            self._counts["submitted"] += 1
        if self._pending == 1 or self._pending == self._threshold:
            assert self._wake is not None
            self._wake.set()
        if self._lane.is_open:
            self._watch_lane()

    def _watch_lane(self) -> None:
        """On the loop, while runners serve the lane and work waits in the
        queue: close the lane once that work forms a batch, so that the
        runners give their lease back for it instead of keeping it for the
        rest of its reuse window."""
        if not self._pending or not self._lane.is_open:
            return
        if self._batch_ready() and not self._feed_lane():
            # Only thread items wait: the next runner to become idle asks
            # for them, so the lane need not give its lease back.
            self._lane.wants_feed = bool(self._pending)
            return
        if self._batch_ready():
            self._unwatch_lane()
            self._lane.close()
        elif self._lane_watch is None:
            due = self._queue[0].enqueued_at + self._max_wait
            loop = asyncio.get_running_loop()
            self._lane_watch = loop.call_later(max(0.0, due - time.monotonic()), self._lane_due)

    def _lane_ready(self) -> None:
        """A runner started serving (worker thread): let the loop hand it
        thread items that were refused while no runner was ready."""
        loop = self._binding.loop
        if loop is not None and self._pending:
            try:
                loop.call_soon_threadsafe(self._feed_lane)
            except RuntimeError:
                pass  # the loop is closed: nothing is queued any more

    def _feed_lane(self) -> bool:
        """On the loop: move queued thread items into the lane while it takes
        them (only from the head of the queue, so this stays cheap behind a
        long backlog).

        Returns:
            Whether work the lane cannot take is queued: items from the loop,
            or more than the head that was looked at.
        """
        lane = self._lane
        if not self._pending or not lane.is_open or self._stopping:
            return bool(self._pending)
        queue = self._queue
        kept: list[Item] = []
        moved = 0
        scan = min(len(queue), 4 * self._threshold)
        others = len(queue) > scan
        for _ in range(scan):
            item = queue.popleft()
            if item.state != QUEUED:
                continue
            if type(item) is ThreadItem and lane.offer(item, new=False):
                item.state = INBOX  # the lane's now, as if offered on arrival
                moved += 1
            else:
                others = others or type(item) is not ThreadItem
                kept.append(item)
        queue.extendleft(reversed(kept))
        self._pending -= moved
        return others

    def _lane_due(self) -> None:
        self._lane_watch = None
        self._watch_lane()

    def _unwatch_lane(self) -> None:
        if self._lane_watch is not None:
            self._lane_watch.cancel()
            self._lane_watch = None

    def _item_ended(self, how: str) -> None:
        """An item's future reached its final state (any thread)."""
        with self._ends_lock:
            self._ends[how] += 1

    def _item_cancelled(self, item: Item) -> None:
        """On the loop: the caller cancelled ``item``.

        An ``INBOX`` item is not queued yet: :meth:`_drain_inbox` drops it.
        """
        if item.state == QUEUED:
            item.state = ENDED
            item.fn, item.args, item.kwargs = None, (), {}
            self._pending -= 1
            queue = self._queue
            while queue and queue[0].state != QUEUED:
                queue.popleft()
        elif item.state == RUNNING:
            item.state = ENDED
            self._running.discard(item)

    def _item_cancelled_threadsafe(self, item: Item) -> None:
        loop = self._binding.loop
        if loop is None:
            return
        if self._binding.on_loop_thread():
            self._item_cancelled(item)
            return
        try:
            loop.call_soon_threadsafe(self._item_cancelled, item)
        except RuntimeError:
            pass  # loop closed: the grinder is gone, nothing to remove

    # -------------------------------------------------------------- batching

    def _batch_ready(self) -> bool:
        if not self._pending:
            return False
        if self._pending >= self._threshold or self._stopping:
            return True
        return time.monotonic() - self._queue[0].enqueued_at >= self._max_wait

    async def _batch_loop(self) -> None:
        loop = asyncio.get_running_loop()
        wake = self._wake
        assert wake is not None
        while True:
            wake.clear()
            if self._stopping and not self._pending:
                # A lease worker can still hand items back (see
                # _return_unsent, which wakes us): leave only once none runs.
                running = {w for w in self._workers if not w.done()}
                if not running:
                    return
                woken = loop.create_task(wake.wait())
                try:
                    await asyncio.wait({*running, woken}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    woken.cancel()
                continue
            if not self._batch_ready():
                timer = None
                if self._pending:
                    due = self._queue[0].enqueued_at + self._max_wait
                    timer = loop.call_later(max(0.0, due - time.monotonic()), wake.set)
                try:
                    await wake.wait()
                finally:
                    if timer is not None:
                        timer.cancel()
                continue
            number = next(self._batch_numbers)
            try:
                lease = await self._manager.acquire(
                    lease_seconds=self._lease_seconds, owner=f"{self._owner_prefix}-{number}"
                )
            except Exception as exc:
                # No lease (the manager stopped, say): this batch fails rather
                # than waiting forever; later batches try again.
                self._logger.warning("grinder could not lease a pool: %s", exc)
                self._fail_unsubmitted(self._take_batch(), exc)
                continue
            self._counts["leases"] += 1
            items = self._take_batch()
            if not items:
                await lease.release()
                continue
            worker = loop.create_task(self._lease_worker(lease, items))
            self._workers.add(worker)
            worker.add_done_callback(functools.partial(self._worker_done, lease))

    def _worker_done(self, lease: ExecutorLease, worker: asyncio.Task[None]) -> None:
        self._workers.discard(worker)
        if lease.active:
            # Cancelled before its first step, the worker never reached its
            # ``finally``: give the lease back here.
            worker.get_loop().create_task(lease.release())

    def _take_batch(self) -> list[Item]:
        items: list[Item] = []
        queue = self._queue
        while queue and len(items) < self._threshold:
            item = queue.popleft()
            if item.state == QUEUED:
                item.state = RUNNING
                items.append(item)
        self._pending -= len(items)
        self._running.update(items)  # from now on a cancelling stop ends them
        while queue and queue[0].state != QUEUED:
            queue.popleft()
        if self._pending and self._pending < self._threshold and self._wake is not None:
            self._wake.set()  # re-arm the deadline timer for the new oldest item
        return items

    async def _lease_worker(self, lease: ExecutorLease, items: list[Item]) -> None:
        """Feed batches to one lease while more work is ready.

        On an in-process lease the next batch goes in once at most two
        rounds of calls are out on the lease (so settling lag never idles
        its workers, and no lease hoards the backlog); out of process, and
        after a batch with lane runners, once every call on it has ended.
        The lease goes back when every batch on it has ended.
        """
        reuse_until = lease.soft_expires_at - lease.lease_seconds / 2
        workers = getattr(self._manager, "workers_per_pool", 1)
        load = _Load(2 * workers if self._in_process else 0)
        running: list[_Batch] = []
        try:
            while items:
                self._counts["batches"] += 1
                batch = self._start_batch(lease, load, items, reuse_until)
                running.append(batch)
                if batch.runners:
                    await batch.done  # nothing may queue behind runners
                await load.wait_for_room()
                running = [b for b in running if not b.done.done()]
                if (
                    self._cancelling
                    or batch.refused
                    or not lease.active
                    or not self._batch_ready()
                    or time.monotonic() > reuse_until
                ):
                    break
                items = self._take_batch()
            for batch in running:
                await batch.done
        finally:
            await lease.release()

    def _start_batch(
        self, lease: ExecutorLease, load: _Load, items: list[Item], until: float
    ) -> _Batch:
        """Hand ``items`` to ``lease``; return the batch.

        Items run in chunks; when the batch starts lane runners, its thread
        items go to the runners instead (they start at once, with nothing
        queued ahead of them but the batch's other chunks).
        """
        batch = _Batch(lease, load, self._open_batches)
        workers = getattr(self._manager, "workers_per_pool", 1)
        direct: list[Item] = (
            [i for i in items if type(i) is ThreadItem] if self._wants_runners(items) else []
        )
        chunked = [i for i in items if type(i) is not ThreadItem] if direct else items
        size = self._planner.chunk_size(len(chunked), workers) if chunked else 1
        for start in range(0, len(chunked), size):
            try:
                self._submit_chunk(batch, chunked[start : start + size])
            except Exception as exc:
                batch.refused = True
                self._return_unsent(chunked[start:] + direct, exc)
                break
        else:
            if direct:
                self._start_runners(batch, workers, until, direct)
        if batch.outstanding:
            self._open_batches.add(batch)
        else:
            batch.close()
        return batch

    def _wants_runners(self, items: list[Item]) -> bool:
        """Whether a batch should also serve the lane: on an in-process
        lease, while other threads are submitting (see ``_lane.py``)."""
        return (
            self._in_process
            and not self._stopping
            and not self._cancelling
            and any(type(item) is ThreadItem for item in items)
        )

    def _start_runners(
        self, batch: _Batch, workers: int, until: float, items: list[Item]
    ) -> None:
        """Queue a lane runner per worker of the batch's lease, behind its
        chunks, and hand them the batch's thread ``items``."""
        lease, lane = batch.lease, self._lane
        # Register the runners and hand them the items before any of them
        # can start: one that found the lane empty could otherwise leave
        # (closing it) before the items arrive.
        runners = [
            lane.add_runner(LINGER_SECONDS, until, lambda: lease.active) for _ in range(workers)
        ]
        thread_items = [i for i in items if type(i) is ThreadItem and i.state == RUNNING]
        for item in thread_items:
            item.state = INBOX  # the lane's now, as if offered on arrival
        self._running.difference_update(thread_items)
        lane.push(thread_items)
        for index, runner in enumerate(runners):
            try:
                future = lease.executor.submit(lane.serve, runner)
            except Exception:
                # The lease ended meanwhile.  The last runner to leave hands
                # the items (which never ran) back to the loop.
                for unsent in runners[index:]:
                    lane.leave(unsent)
                break
            batch.sent()
            batch.runners = True
            self._chunks.add(future)
            future.add_done_callback(
                lambda f, runner=runner: self._runner_finished(f, batch, lane, runner)  # type: ignore[misc]
            )
        self._watch_lane()  # work left in the queue still gets its batch

    def _runner_finished(
        self,
        future: concurrent.futures.Future[tuple[int, float]],
        batch: _Batch,
        lane: DirectLane,
        runner: LaneRunner,
    ) -> None:
        """Done-callback of a lane runner (any thread)."""
        lane.leave(runner)  # a runner that never ran (cancelled) leaves here
        timing = None
        if not future.cancelled():
            if future.exception() is None:
                timing = future.result()
            else:  # a bug in the lane's own code
                self._logger.error("grinder lane runner failed", exc_info=future.exception())
        loop = self._binding.loop
        try:
            if loop is not None:
                self._finished.post(loop, (future, [], batch, None, timing, False))
        except RuntimeError:
            pass  # loop closed after a cancelling stop

    def _submit_chunk(self, batch: _Batch, chunk: list[Item]) -> None:
        """Hand ``chunk`` to the batch's lease as one executor call.

        Raises:
            Exception: Whatever the executor's ``submit`` raises.
        """
        if self._in_process:
            future: concurrent.futures.Future[Any] = batch.lease.executor.submit(
                run_items, chunk
            )
        else:
            chunk = [i for i in chunk if i.state == RUNNING]
            if not chunk:
                return
            calls = [(i.fn, i.args, i.kwargs) for i in chunk if i.fn is not None]
            runner = run_calls_pickled if self._pickled else run_calls
            future = batch.lease.executor.submit(runner, calls)
        batch.sent()
        self._chunks.add(future)
        future.add_done_callback(
            lambda f, chunk=chunk: self._chunk_finished(f, chunk, batch)  # type: ignore[misc]
        )

    def _fail_unsubmitted(self, items: list[Item], exc: BaseException) -> None:
        for item in items:
            if item.state == RUNNING:
                self._end(item, (False, exc))

    def _return_unsent(self, items: list[Item], exc: BaseException) -> None:
        """On the loop: a lease refused ``items`` (none of them ran).

        A pool that broke before they were sent (a worker died while it
        was idle, or under an earlier batch) is replaced by its manager, so
        they go back to the head of the queue for the next lease, once; on
        any other refusal, or the second time, they fail with its error.
        """
        if not isinstance(exc, concurrent.futures.BrokenExecutor) or self._cancelling:
            self._fail_unsubmitted(items, exc)
            return
        back = [i for i in items if i.state == RUNNING and not i.requeued]
        self._fail_unsubmitted([i for i in items if i.requeued], exc)
        for item in back:
            item.state, item.requeued = QUEUED, True
        self._running.difference_update(back)
        self._queue.extendleft(reversed(back))
        self._pending += len(back)
        if back:
            if self._wake is not None:
                self._wake.set()
            self._watch_lane()

    def _chunk_finished(
        self, future: concurrent.futures.Future[Any], chunk: list[Item], batch: _Batch
    ) -> None:
        """Done-callback of a chunk; runs on a worker thread."""
        if future.cancelled():
            failure: BaseException | None = concurrent.futures.CancelledError()
        else:
            failure = future.exception()
        if not self._cancelling and isinstance(
            failure, (concurrent.futures.CancelledError, concurrent.futures.BrokenExecutor)
        ):
            failure = self._pool_lost(batch, failure)
        # A pickled chunk's own code captures every error, so a failure of
        # the call itself (not a broken pool) means the chunk was never sent.
        unsent = (
            self._pickled
            and not future.cancelled()
            and len(chunk) > 1
            and isinstance(failure, Exception)
            and not isinstance(failure, concurrent.futures.BrokenExecutor)
        )
        seconds: float | None = None
        if failure is None:
            result = future.result()
            if self._in_process:
                seconds = result
            else:
                outcomes, seconds = result
                if self._pickled:
                    try:
                        outcomes = pickle.loads(outcomes)
                    except Exception as exc:
                        failure, seconds = exc, None
                if failure is None:
                    for item, outcome in zip(chunk, outcomes, strict=True):
                        item.outcome = outcome
        # Thread items are resolved here, without waiting for the loop (they
        # count themselves as they end); the loop settles the rest.
        if failure is None:
            for item in chunk:
                if type(item) is ThreadItem and item.outcome is not None:
                    item.resolve(item.outcome)
        loop = self._binding.loop
        try:
            if loop is not None:
                timing = None if seconds is None else (len(chunk), seconds)
                self._finished.post(loop, (future, chunk, batch, failure, timing, unsent))
        except RuntimeError:
            pass  # loop closed after a cancelling stop; the items were cancelled then

    def _pool_lost(self, batch: _Batch, failure: BaseException) -> BaseException:
        """Why a chunk we did not cancel was dropped or broken.

        The grinder holds a batch's lease until the batch ends, so a lease
        that ended meanwhile was revoked (or its manager stopped): the
        callers never cancelled these items, they fail with
        :class:`LeaseExpiredError`.  Otherwise the pool broke and was
        replaced: a cancelled chunk fails as broken, not cancelled.
        """
        if not batch.lease.active:
            error: BaseException = LeaseExpiredError(
                f"lease {batch.lease.lease_id} ended (revoked after its hard expiry, "
                "or its manager stopped) before this item finished"
            )
        elif isinstance(failure, concurrent.futures.CancelledError):
            error = concurrent.futures.BrokenExecutor(
                "the leased pool broke and was replaced before this item ran"
            )
        else:
            return failure
        error.__cause__ = failure
        return error

    def _settle_chunks(self, finished: list[_Finished]) -> None:
        for entry in finished:
            self._settle_chunk(*entry)

    def _settle_chunk(
        self,
        future: concurrent.futures.Future[Any],
        chunk: list[Item],
        batch: _Batch,
        failure: BaseException | None,
        timing: tuple[int, float] | None,
        unsent: bool = False,
    ) -> None:
        """On the loop: resolve a finished chunk's items.

        An ``unsent`` chunk (a pickled chunk that failed as a whole: an
        unpicklable callable or argument) never ran, so its items are sent
        again one per call, and only the unpicklable ones fail.
        """
        self._chunks.discard(future)
        if timing is not None:
            self._planner.observe(*timing)
        if unsent and not self._cancelling:
            for index, item in enumerate(chunk):
                try:
                    self._submit_chunk(batch, [item])
                except Exception as exc:
                    self._return_unsent(chunk[index:], exc)
                    break
            failure = None  # the resubmitted items settle on their own
        for item in chunk:
            if item.state != RUNNING:
                continue
            if failure is not None:
                self._end(item, (False, failure))
            elif item.outcome is not None:
                # The worker already resolved thread items (_chunk_finished).
                self._end(item, item.outcome, resolved=type(item) is ThreadItem)
        batch.settled()

    def _end(self, item: Item, outcome: tuple[bool, Any], resolved: bool = False) -> None:
        item.state = ENDED
        self._running.discard(item)
        item.fn, item.args, item.kwargs = None, (), {}
        item.outcome = None
        ok, value = outcome
        if not ok and isinstance(value, _CANCELLED) and (item.cancel() or item.cancelled()):
            return
        if not resolved:  # (items count themselves as they end)
            item.resolve(outcome)

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
        if self._started:
            # Count chunks that finished but are not settled yet: their
            # callers may already hold the results.
            finished = self._finished.take()
            if finished:
                self._settle_chunks(finished)
        oldest = 0.0
        if self._queue and self._pending:
            oldest = max(0.0, time.monotonic() - self._queue[0].enqueued_at)
        return {
            "started": self._started,
            "stopping": self._stopping,
            "pending": self._pending,
            "batch_size_threshold": self._threshold,
            "max_wait_seconds": self._max_wait,
            "lease_seconds": self._lease_seconds,
            "oldest_wait_seconds": oldest,
            "batches_in_flight": len(self._open_batches),
            "leases_held": len(self._workers),
            "running": len(self._running),
            "items_submitted": self._counts["submitted"] + self._lane.offered,
            "items_completed": self._ends["completed"],
            "items_failed": self._ends["failed"],
            "items_cancelled": self._ends["cancelled"],
            "batches_run": self._counts["batches"],
            "leases_acquired": self._counts["leases"],
            "chunking": "auto" if self._planner.fixed is None else self._planner.fixed,
            "avg_item_seconds": self._planner.avg_item_seconds,
            **self._lane.stats(),
            "items_direct": self._served_before + self._lane.served,
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
