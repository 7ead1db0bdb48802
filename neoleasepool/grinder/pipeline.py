"""Lease acquisition and pipelining: the batcher and one worker per lease.

The *batcher* (a task on the grinder's loop) waits until the queue has a
batch ready, leases a pool for it, and starts a *lease worker*; it does not
wait for that batch, so a backlog becomes several batches running at once on
as many leases as the manager lends. A lease worker keeps feeding its lease
while batches are ready and its reuse window lasts: on an in-process lease
the next batch goes in once at most two rounds of calls are out (so settling
lag never idles the workers, and no lease hoards the backlog); out of
process, once every call on it has ended. The lease goes back when its last
batch has ended.

While runners of the thread hand-off hold leases, work queued on the loop
could wait for them: when a batch is ready, queued thread items are first
offered to the hand-off; if work is still left, the hand-off is closed, so
that its runners give their leases back, and no batch starts runners until
the batcher has its lease.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

from .batches import Batch, Batches, Load
from .chunking import ChunkPlanner
from .chunks import ChunkKind
from .contracts import GrinderManager, LeaseView
from .intake import Intake, cancel_item, no_call_to_stop
from .items import Item
from .queue import ItemQueue

__all__ = ["Pipeline"]


class Pipeline:
    """The batcher and the lease workers of one run of a grinder (loop only).

    Args:
        manager: Where leases come from.
        queue: The grinder's queue.
        intake: The way items come in, its hand-off and counts.
        kind: How chunks travel (from the backend's capabilities).
        planner: Chooses chunk sizes.
        workers: Workers per leased pool.
        lease_seconds: Duration of each lease.
        owner_prefix: Prefix of the leases' owner labels.
        logger: For leases that cannot be had.
        numbers: Numbers the leases' owner labels (across runs).
        fault: Reports a failure of an internal step (any thread); the
            grinder then breaks the run (:meth:`break_down`).
    """

    def __init__(
        self,
        *,
        manager: GrinderManager,
        queue: ItemQueue,
        intake: Intake,
        kind: ChunkKind,
        planner: ChunkPlanner,
        workers: int,
        lease_seconds: float,
        owner_prefix: str,
        logger: logging.Logger,
        numbers: itertools.count[int],
        fault: Callable[[str, BaseException], None],
    ) -> None:
        self._manager = manager
        self._queue = queue
        self._intake = intake
        self._handoff = intake.handoff
        self._lease_seconds = lease_seconds
        self._owner_prefix = owner_prefix
        self._logger = logger
        self._counted = intake.count
        self._numbers = numbers
        self._fault = fault
        self.wake = asyncio.Event()
        self.workers: set[asyncio.Task[None]] = set()
        self._batcher: asyncio.Task[Any] | None = None
        #: Sends this run's batches and settles their chunks.
        self.batches = Batches(
            loop=asyncio.get_running_loop(),
            queue=queue,
            handoff=intake.handoff,
            kind=kind,
            planner=planner,
            workers=workers,
            wake=self.wake.set,
            logger=logger,
            running=intake.running,
            overtime=intake.overtime,
            fault=fault,
        )
        self._batches = self.batches
        intake.stop_call = self.batches.stop_call_of

    def ready(self) -> bool:
        return self._queue.ready(self._batches.stopping)

    def start_batcher(self, name: str) -> asyncio.Task[None]:
        """Start :meth:`run` as the run's batcher task (loop)."""
        self._batcher = asyncio.get_running_loop().create_task(self.run(), name=name)
        return self._batcher

    async def run(self) -> None:
        """The batcher: lease a pool for each batch that is ready.

        A failure (a bug) breaks the run before the task ends, so that no
        item finds the batcher gone and the grinder not yet broken.
        """
        try:
            await self._batch_while_running()
        except Exception as exc:
            self._fault("its batcher", exc)
            raise

    async def _batch_while_running(self) -> None:
        wake = self.wake
        while True:
            wake.clear()
            if self._batches.stopping and not self._queue.pending:
                if not await self._wait_for_workers():
                    return
                continue
            if not self.ready():
                await self._wait_until_due()
                continue
            # Queued thread items go to waiting runners, if any are free.
            self._queue.hand_over(functools.partial(self._handoff.offer, new=False, wait=False))
            if not self._queue.pending:
                continue
            # Runners (serving, or queued on a worker) give their leases back.
            self._handoff.close()
            await self._lease_batch()

    async def _wait_for_workers(self) -> bool:
        """While stopping with nothing queued: wait for a lease worker to end
        or for items handed back; ``False`` once no worker runs."""
        running = {w for w in self.workers if not w.done()}
        if not running:
            return False
        woken = asyncio.get_running_loop().create_task(self.wake.wait())
        try:
            await asyncio.wait({*running, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
        return True

    async def _wait_until_due(self) -> None:
        timer = None
        if self._queue.pending:
            delay = max(0.0, self._queue.due() - time.monotonic())
            timer = asyncio.get_running_loop().call_later(delay, self.wake.set)
        try:
            await self.wake.wait()
        finally:
            if timer is not None:
                timer.cancel()

    async def _lease_batch(self) -> None:
        number = next(self._numbers)
        self._batches.leasing = True
        try:
            lease = await self._manager.acquire(
                lease_seconds=self._lease_seconds, owner=f"{self._owner_prefix}-{number}"
            )
        except Exception as exc:
            # No lease (the manager stopped, say): this batch fails rather
            # than waiting forever; later batches try again.
            self._logger.warning("grinder could not lease a pool: %s", exc)
            self._batches.fail(self._take(), exc)
            return
        finally:
            self._batches.leasing = False
        self._counted("leases")
        items = self._take()
        try:
            view = LeaseView(lease, self._lease_seconds)
        except TypeError as exc:
            self._logger.error("grinder got a lease it cannot use: %s", exc)
            self._batches.fail(items, exc)
            await _give_back_unusable(lease, self._logger)
            return
        if not items:
            await view.release()
            return
        worker = asyncio.get_running_loop().create_task(self._lease_worker(view, items))
        self.workers.add(worker)
        worker.add_done_callback(functools.partial(self._worker_done, view))

    def _take(self) -> list[Item]:
        """The next batch's items, ``RUNNING`` and kept in ``batches.running``
        from now on, so that a stop or a fault ends them even while only a
        lease worker that has not started yet holds them."""
        items = self._queue.take()
        self._batches.running.update(items)
        if self._queue.pending and self._queue.pending < self._queue.threshold:
            self.wake.set()  # re-arm the deadline timer for the new oldest item
        return items

    def _worker_done(self, lease: LeaseView, worker: asyncio.Task[None]) -> None:
        self.workers.discard(worker)
        if not worker.cancelled() and worker.exception() is not None:
            self._fault("a lease worker", worker.exception())  # type: ignore[arg-type]
        if not lease.released:
            # Cancelled before its first step, the worker never reached its
            # ``finally``: give the lease back here.
            worker.get_loop().create_task(lease.release())

    async def _lease_worker(self, lease: LeaseView, items: list[Item]) -> None:
        """Feed batches to one lease while more work is ready."""
        try:
            await self._feed(lease, items)
        finally:
            await lease.release()

    async def _feed(self, lease: LeaseView, items: list[Item]) -> None:
        batches = self._batches
        load = Load(2 * batches.workers if batches.kind.in_process else 0)
        running: list[Batch] = []
        while items:
            self._counted("batches")
            try:
                batch = batches.start(lease, load, items, lease.reuse_until)
            except Exception as exc:  # a bug, or a lease that breaks its contract
                self._logger.error("grinder could not start a batch", exc_info=exc)
                batches.fail(items, exc)  # what no chunk settles ends here
                break
            running.append(batch)
            if batch.runners:
                await batch.done  # nothing may queue behind runners
            await load.wait_for_room()
            running = [b for b in running if not b.done.done()]
            if (
                batches.cancelling
                or batch.refused
                or not lease.active
                or not self.ready()
                or time.monotonic() > lease.reuse_until
            ):
                break
            items = self._take()
        for batch in running:
            await batch.done

    async def stop(self, batcher: asyncio.Task[None], *, cancel: bool) -> None:
        """Drain the queue (or cancel everything) and wait for the batcher
        and every lease worker to end."""
        batches, intake = self._batches, self._intake
        batches.stopping = True
        self._handoff.close(cancel=cancel)  # runners finish their item and leave
        intake.drain_inbox()
        if cancel:
            batches.cancelling = True
            self._cancel_everything(batcher)
        self.wake.set()
        # Shielded: if the caller cancels this stop, the drain goes on (a
        # second stop() waits for it) rather than stranding queued items.
        await asyncio.shield(asyncio.gather(batcher, return_exceptions=True))
        # Wait only for workers still running: a finished one stays in the
        # set until its done-callback runs, and gather() of finished tasks
        # completes without yielding to the loop (Python 3.12+), which would
        # spin here forever.
        while running := [w for w in self.workers if not w.done()]:
            await asyncio.shield(asyncio.gather(*running, return_exceptions=True))
        batches.open.clear()  # a cancelling stop abandons batches mid-way
        intake.stop_call = no_call_to_stop  # (and holds this run's batches no more)
        intake.drain_inbox()
        left = self._queue.take_all()
        if left:  # a bug: say so, and end them rather than leave them waiting
            self._logger.error("grinder stopped with %s item(s) still queued", len(left))
            for item in left:
                cancel_item(item)

    def break_down(self, error: BaseException) -> None:
        """End this run after a fault (loop): every item it holds fails with
        ``error``, and the batcher and lease workers end (giving their leases
        back); the grinder refuses new items until it is restarted."""
        batches, intake = self._batches, self._intake
        self._handoff.close()  # waiting items come back and are refused; runners leave
        intake.drain_inbox()
        batches.fail(self._queue.take_all(), error)
        batches.fail(list(batches.running), error)
        for task in (self._batcher, *self.workers):
            if task is not None:
                task.cancel()
        self.wake.set()

    def _cancel_everything(self, batcher: asyncio.Task[None]) -> None:
        batches = self._batches
        for item in self._queue.take_all():
            cancel_item(item)
        for chunk in list(batches.chunks):
            chunk.cancel()
        for item in list(batches.running):
            cancel_item(item)
        batches.running.clear()
        batcher.cancel()
        for worker in self.workers:
            worker.cancel()


async def _give_back_unusable(lease: Any, logger: logging.Logger) -> None:
    """Release a lease the grinder cannot use, if it has a way to be released."""
    release = getattr(lease, "release", None)
    if not callable(release):
        return
    try:
        outcome = release()
        if asyncio.iscoroutine(outcome) or isinstance(outcome, asyncio.Future):
            await outcome
    except Exception:
        logger.warning("grinder could not release a lease it cannot use", exc_info=True)
