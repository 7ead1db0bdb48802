"""Batches: a batch's items sent to one lease as chunks, and settled back.

A batch runs under one lease. Its items go to the lease's executor in
chunks (``chunks.py``) sized by the :class:`~.chunking.ChunkPlanner`; on an
in-process lease, a batch that holds thread items also queues one runner of
the thread hand-off per worker, behind its chunks (``handoff.py``).

A chunk's done-callback runs on a worker thread: it reads the outcomes,
resolves thread items there and then (their callers need not wait for the
loop), and posts the chunk to the loop, which settles the other items and
the batch. Items a lease refused unrun go back to the queue once, when the
pool broke before they reached it (its manager replaces it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable
from typing import Any

from .._util.mailbox import Mailbox
from ..exceptions import ItemTimeoutError, LeaseExpiredError
from .chunking import ChunkPlanner
from .chunks import ChunkKind, sendable
from .contracts import LeaseView
from .handoff import LINGER_SECONDS, Handoff, Runner
from .items import ENDED, RUNNING, Item, Outcome, ThreadItem, forget_call
from .overtime import Overtime
from .queue import ItemQueue

__all__ = ["Batch", "Batches", "Load"]

_CANCELLED = (asyncio.CancelledError, concurrent.futures.CancelledError)

#: A finished chunk on its way to the loop: its future, items, batch, the
#: failure of the call itself (if any), how many items ran in how many
#: seconds, and whether it never ran (see :meth:`Batches.settle`).
Finished = tuple[
    "concurrent.futures.Future[Any]", "list[Item]", "Batch", "BaseException | None",
    "tuple[int, float] | None", bool,
]


class Load:
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


class Batch:
    """Calls (chunks and runners) out under one lease; ``done`` is set once
    none is."""

    __slots__ = ("done", "lease", "load", "open", "outstanding", "refused", "runners")

    def __init__(self, lease: LeaseView, load: Load, open_batches: set[Batch]) -> None:
        self.lease = lease
        self.load = load
        self.open = open_batches
        self.outstanding = 0
        self.runners = False  # runners of the hand-off serve from its lease's workers
        self.refused = False  # its lease refused a call: feed that lease no more
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def sent(self) -> None:
        self.outstanding += 1
        self.load.outstanding += 1

    def settled(self) -> None:
        self.outstanding -= 1
        self.load.settled()
        if self.outstanding <= 0:
            self.close()

    def close(self) -> None:
        self.open.discard(self)
        if not self.done.done():
            self.done.set_result(None)


class Batches:
    """Sends batches to leases and settles their chunks, for one run of a grinder.

    Args:
        loop: The grinder's loop.
        queue: Where refused items go back to.
        handoff: The thread hand-off runners serve.
        kind: How chunks travel (from the backend's capabilities).
        planner: Chooses chunk sizes.
        workers: Workers per leased pool.
        wake: Wakes the batcher (loop thread).
        logger: For runner failures (bugs).
        running: Where items taken by batches are kept until they end.
        overtime: The time limits the grinder keeps itself.
        fault: Reports a failure of its own code (any thread): a
            done-callback that raised would otherwise leave its items
            waiting forever (``concurrent.futures`` only logs it).
    """

    def __init__(
        self,
        *,
        loop: asyncio.AbstractEventLoop,
        queue: ItemQueue,
        handoff: Handoff,
        kind: ChunkKind,
        planner: ChunkPlanner,
        workers: int,
        wake: Callable[[], None],
        logger: logging.Logger,
        running: set[Item],
        overtime: Overtime,
        fault: Callable[[str, BaseException], None],
    ) -> None:
        self.loop = loop
        self.queue = queue
        self.handoff = handoff
        self.kind = kind
        self.planner = planner
        self.workers = workers
        self.wake = wake
        self.logger = logger
        self.open: set[Batch] = set()  # batches in flight
        self.running = running  # taken by a batch, not ended
        self.overtime = overtime
        #: The calls out (chunks, and hand-off runners with no items).
        self.chunks: dict[concurrent.futures.Future[Any], list[Item]] = {}
        self.cancelling = False  # read by worker threads: set once, never cleared
        self.stopping = False
        self.leasing = False  # the batcher waits for a lease: start no runners
        self.fault = fault
        self._finished: Mailbox[Finished] = Mailbox(self._settle_all)

    # -------------------------------------------------------------- sending

    def start(self, lease: LeaseView, load: Load, items: list[Item], until: float) -> Batch:
        """Hand ``items`` to ``lease`` in chunks (loop); the batch."""
        batch = Batch(lease, load, self.open)
        chunks = _cut(items, self.planner.chunk_size(len(items), self.workers))
        for index, chunk in enumerate(chunks):
            try:
                self.send(batch, chunk)
            except Exception as exc:
                batch.refused = True
                self.refused([item for rest in chunks[index:] for item in rest], exc)
                break
        else:
            if self._wants_runners(items):
                self._start_runners(batch, until)
        if batch.outstanding:
            self.open.add(batch)
        else:
            batch.close()
        return batch

    def send(self, batch: Batch, chunk: list[Item]) -> None:
        """Hand ``chunk`` to the batch's lease as one executor call.

        Raises:
            Exception: Whatever the executor's ``submit`` raises.
        """
        chunk = sendable(chunk, self.kind)
        if not chunk:
            return
        future = self.kind.send(batch.lease.executor, chunk)
        batch.sent()
        self.chunks[future] = chunk
        if (
            chunk[0].limits is not None
            and not self.kind.in_process
            and not self.kind.enforces_limits(batch.lease.executor)
        ):
            # Its start is not known here: the limit counts from now.
            self.overtime.arm(chunk[0], time.monotonic())
        future.add_done_callback(
            lambda f, chunk=chunk: self._guarded(self._chunk_finished, f, chunk, batch)
        )

    def _timed(self, chunk: list[Item]) -> bool:
        """Whether a chunk's duration tells the planner about item durations
        (a map chunk's is a whole chunk's, not one item's)."""
        return not chunk[0].solo

    def _wants_runners(self, items: list[Item]) -> bool:
        """Whether a batch should also serve the hand-off: on an in-process
        lease, while other threads are submitting, and unless queued work
        waits for a lease (runners would keep this one from it)."""
        return (
            self.kind.in_process
            and not self.leasing
            and not self.stopping
            and not self.cancelling
            and any(type(item) is ThreadItem for item in items)
        )

    def _start_runners(self, batch: Batch, until: float) -> None:
        """Queue a runner per worker of the batch's lease, behind its chunks."""
        lease, handoff = batch.lease, self.handoff
        active: Callable[[], bool] = lambda: bool(lease.active)  # noqa: E731
        for _ in range(self.workers):
            runner = handoff.add_runner(until, active, LINGER_SECONDS)
            try:
                future = lease.executor.submit(handoff.serve, runner)
            except Exception:
                handoff.discard(runner)  # the lease ended meanwhile
                break
            batch.sent()
            batch.runners = True
            self.chunks[future] = []
            future.add_done_callback(
                lambda f, runner=runner: self._guarded(  # type: ignore[misc]
                    self._runner_finished, f, batch, runner
                )
            )

    def _runner_finished(
        self, future: concurrent.futures.Future[tuple[int, float]], batch: Batch, runner: Runner
    ) -> None:
        """Done-callback of a runner (any thread)."""
        self.handoff.discard(runner)  # one cancelled before it ran
        timing = None
        if not future.cancelled():
            if future.exception() is None:
                timing = future.result()
            else:  # a bug in the hand-off's own code (its item failed with it)
                self.fault("a hand-off runner", future.exception())  # type: ignore[arg-type]
        self._post((future, [], batch, None, timing, False))

    def _guarded(self, callback: Callable[..., None], *args: Any) -> None:
        """Run a done-callback; report what it raises instead of losing it."""
        try:
            callback(*args)
        except Exception as exc:
            self.fault("a chunk's done-callback", exc)

    # ------------------------------------------------------------- finishing

    def _chunk_finished(
        self, future: concurrent.futures.Future[Any], chunk: list[Item], batch: Batch
    ) -> None:
        """Done-callback of a chunk; runs on a worker thread."""
        failure: BaseException | None
        failure = concurrent.futures.CancelledError() if future.cancelled() else future.exception()
        if not self.cancelling and isinstance(
            failure, (concurrent.futures.CancelledError, concurrent.futures.BrokenExecutor)
        ):
            failure = _pool_lost(batch, failure)
        # A pickled chunk's own code captures every error, so a failure of
        # the call itself (not a broken pool) means the chunk never ran.
        unsent = (
            self.kind.resend_refused
            and not future.cancelled()
            and len(chunk) > 1
            and isinstance(failure, Exception)
            and not isinstance(failure, concurrent.futures.BrokenExecutor)
        )
        seconds: float | None = None
        if failure is None:
            try:
                seconds = self.kind.read(future.result(), chunk)
            except Exception as exc:
                failure = exc
        if failure is None:  # resolve thread items here, without the loop
            for item in chunk:
                # Read ``outcome`` once: the loop may end this item meanwhile
                # (a fault, a cancelling stop: ``end()`` clears it), and a
                # second read could then see ``None``. ``resolve`` goes
                # through the future's own lock, so the first end wins.
                outcome = item.outcome if type(item) is ThreadItem else None
                if outcome is not None:
                    item.resolve(outcome)
        timing = None if seconds is None or not self._timed(chunk) else (len(chunk), seconds)
        self._post((future, chunk, batch, failure, timing, unsent))

    def _post(self, finished: Finished) -> None:
        try:
            self._finished.post(self.loop, finished)
        except RuntimeError:
            pass  # loop closed after a cancelling stop; the items were cancelled then

    def settle_posted(self) -> None:
        """Settle chunks that finished but whose post has not run yet (loop)."""
        self._settle_all(self._finished.take())

    def _settle_all(self, finished: list[Finished]) -> None:
        for entry in finished:
            try:
                self.settle(*entry)
            except Exception as exc:
                self.fault("settling a chunk", exc)

    def settle(
        self,
        future: concurrent.futures.Future[Any],
        chunk: list[Item],
        batch: Batch,
        failure: BaseException | None,
        timing: tuple[int, float] | None,
        unsent: bool = False,
    ) -> None:
        """On the loop: end a finished chunk's items.

        An ``unsent`` chunk never ran, so its items are sent again one per
        call, and only those that cannot travel fail.
        """
        self.chunks.pop(future, None)
        if timing is not None:
            self.planner.observe(*timing)
        if unsent and not self.cancelling:
            for index, item in enumerate(chunk):
                try:
                    self.send(batch, [item])
                except Exception as exc:
                    self.refused(chunk[index:], exc)
                    break
            failure = None  # the resent items settle on their own
        for item in chunk:
            if item.limits is not None:
                self.overtime.finished(item)
            if item.state != RUNNING:
                continue
            if failure is not None:
                self.end(item, (False, failure))
            elif item.outcome is not None:  # thread items were resolved already
                self.end(item, item.outcome, resolved=type(item) is ThreadItem)
        batch.settled()

    def end(
        self, item: Item, outcome: Outcome, resolved: bool = False, forget: bool = True
    ) -> None:
        """``RUNNING`` to ``ENDED`` (loop): resolve ``item`` unless it was.

        ``forget=False`` keeps its call: an in-process chunk may be reading
        it on a worker thread right now (it then sees the item done and
        skips it).
        """
        item.state = ENDED
        self.running.discard(item)
        item.outcome = None
        ok, value = outcome
        try:
            if not ok and isinstance(value, _CANCELLED) and (item.cancel() or item.cancelled()):
                return
            if (
                not resolved
                and item.resolve(outcome)  # (its failures name its function)
                and not ok
                and item.limits is not None
                and isinstance(value, ItemTimeoutError)
            ):
                self.overtime.timed_out += 1  # the pool enforced its limit
        finally:
            if forget:
                forget_call(item)

    def stop_call_of(self, item: Item) -> None:
        """Its caller cancelled ``item`` while it runs (loop): stop its call
        where the backend can, once every item that call carries has ended
        (a timed item travels alone; untimed ones may share a call)."""
        if not self.kind.stops_calls:
            return  # a thread's item sees its token; elsewhere the call runs on
        for future, chunk in self.chunks.items():
            if any(i is item for i in chunk):
                if all(i.done() for i in chunk):
                    future.cancel()  # the pool stops the worker running it
                return

    def fail(self, items: list[Item], exc: BaseException) -> None:
        """End ``items`` with ``exc``; they may still be in a running chunk."""
        for item in items:
            if item.state == RUNNING:
                self.end(item, (False, exc), forget=False)

    def refused(self, items: list[Item], exc: BaseException) -> None:
        """On the loop: a lease refused ``items`` (none of them ran).

        A pool that broke before they were sent is replaced by its manager,
        so they go back to the head of the queue for the next lease, once;
        on any other refusal, or the second time, they fail with its error.
        """
        if not isinstance(exc, concurrent.futures.BrokenExecutor) or self.cancelling:
            self.fail(items, exc)
            return
        back = [i for i in items if i.state == RUNNING and not i.requeued]
        self.fail([i for i in items if i.requeued], exc)
        for item in back:
            item.requeued = True
        self.running.difference_update(back)
        self.queue.put_back(back)
        if back:
            self.wake()


def _cut(items: list[Item], size: int) -> list[list[Item]]:
    """``items`` in chunks of ``size``; solo items (map chunks) each alone.

    The queue hands solo items out first (``queue.py``), so they are the
    head of a batch: a batch without any costs one look.
    """
    solo = 0
    while solo < len(items) and items[solo].solo:
        solo += 1
    chunks = [[item] for item in items[:solo]]
    return chunks + [items[start : start + size] for start in range(solo, len(items), size)]


def _pool_lost(batch: Batch, failure: BaseException) -> BaseException:
    """Why a chunk we did not cancel was dropped or broken.

    The grinder holds a batch's lease until the batch ends, so a lease that
    ended meanwhile was revoked (or its manager stopped): the callers never
    cancelled these items, they fail with :class:`LeaseExpiredError`.
    Otherwise the pool broke and was replaced: a cancelled chunk fails as
    broken, not cancelled.
    """
    if not batch.lease.active:
        error: BaseException = LeaseExpiredError(
            f"lease {batch.lease.label} ended (revoked after its hard "
            "expiry, or its manager stopped) before this item finished"
        )
    elif isinstance(failure, concurrent.futures.CancelledError):
        error = concurrent.futures.BrokenExecutor(
            "the leased pool broke and was replaced before this item ran"
        )
    else:
        return failure
    error.__cause__ = failure
    return error
