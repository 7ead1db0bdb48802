"""Background workers, neotasker's model without its polling.

A worker runs its target again and again under a supervisor; the kinds
differ in what each run waits for:

==============================  ==========================================
:class:`BackgroundWorker`       nothing: a sync target back to back, in a
                                pool thread
:class:`BackgroundAsyncWorker`  nothing: back to back, from a coroutine on
                                an aloop (async targets awaited there, sync
                                ones run in the pool)
:class:`BackgroundIntervalWorker`  a timer: ``interval=`` keeps a fixed
                                rate, ``delay=`` sleeps between runs,
                                ``delay_before=`` pauses before each run
:class:`BackgroundQueueWorker`  an item: ``put_threadsafe(item)`` or
                                ``await put(item)``; each item is one run
:class:`BackgroundEventWorker`  a trigger: ``trigger_threadsafe()`` or
                                ``await trigger()``
==============================  ==========================================

:func:`background_worker` turns a function into a worker of the right kind.
The base kinds live in the private :mod:`.worker_base` and
:mod:`.async_worker` modules, the timed one in :mod:`.interval_worker`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any, overload

from .async_worker import BackgroundAsyncWorker
from .interval_worker import BackgroundIntervalWorker
from .worker_base import BackgroundWorker

__all__ = [
    "BackgroundAsyncWorker",
    "BackgroundEventWorker",
    "BackgroundIntervalWorker",
    "BackgroundQueueWorker",
    "BackgroundWorker",
    "background_worker",
]

logger = logging.getLogger("neoleasepool.workers")

#: Put on a queue worker's queue by ``stop()``: everything before it runs.
_STOP = object()


def _put_or_log(worker: BackgroundWorker, queue: asyncio.Queue[Any], item: Any) -> None:
    """Queue ``item`` on the worker's loop; a full bounded queue drops it, loudly."""
    try:
        queue.put_nowait(item)
    except asyncio.QueueFull:
        logger.error("queue worker dropped an item, queue full name=%s", worker.name)


class BackgroundQueueWorker(BackgroundAsyncWorker):
    """Runs its target once per queued item: ``target(item, **kwargs)``.

    :meth:`stop` queues a private sentinel, so the items put before it still
    run (``stop(wait=True)`` waits for them).  ``None`` is an ordinary item.

    Args:
        q: An ``asyncio.Queue`` subclass to use (neotasker's option);
            ``True`` or ``None`` for a plain ``asyncio.Queue``.
        queue: Same as ``q``.
        **kwargs: The options of :class:`BackgroundAsyncWorker`.
    """

    def __init__(self, *args: Any, q: Any = None, queue: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        chosen = q if q is not None else queue
        self._queue_class: Callable[[], asyncio.Queue[Any]] = (
            chosen if isinstance(chosen, type) else asyncio.Queue
        )
        self._queue: asyncio.Queue[Any] | None = None
        self._stop_put: asyncio.Task[None] | None = None

    def _prepare(self) -> None:
        self._queue = self._queue_class()
        self._stop_put = None

    def put_threadsafe(self, item: Any) -> None:
        """Queue ``item`` from any thread; cheap and non-blocking.

        The check and the hand-over happen under the worker's lock, under
        which :meth:`stop` queues its sentinel: an item accepted here is
        queued before the sentinel, so it runs.  An item a bounded queue
        class refuses (``QueueFull``) is logged as dropped.

        Raises:
            LeasePoolNotStartedError: If the worker is not running (the item
                would never run).
        """
        with self._lock:
            aloop = self._require_running("put_threadsafe")
            assert self._queue is not None
            aloop.call_soon(_put_or_log, self, self._queue, item)

    async def put(self, item: Any) -> None:
        """Queue ``item`` from the worker's own loop.

        Raises:
            WrongLoopError: If awaited on another loop.
            LeasePoolNotStartedError: If the worker is not running.
        """
        self._require_worker_loop("put", "put_threadsafe()")
        self._require_running("put")
        assert self._queue is not None
        await self._queue.put(item)

    def get_queue_obj(self) -> asyncio.Queue[Any] | None:
        """The worker's asyncio queue (touch it only on the worker's loop)."""
        return self._queue

    def before_queue_get(self) -> None:
        """Hook: called before each wait for an item."""

    def after_queue_get(self, task: Any) -> None:
        """Hook: called with each item taken from the queue."""

    def send_stop_events(self) -> None:
        """Queue the stop sentinel behind the items already queued."""
        if self._queue is not None:
            self._wake_threadsafe(self._queue_stop, self._queue)

    def _queue_stop(self, queue: asyncio.Queue[Any]) -> None:
        """On the worker's loop: queue the sentinel; a full bounded queue
        gets it as soon as the worker has taken an item (the items already
        queued still run first)."""
        try:
            queue.put_nowait(_STOP)
        except asyncio.QueueFull:
            if self._stop_put is None:
                self._stop_put = asyncio.get_running_loop().create_task(queue.put(_STOP))

    def stats(self) -> dict[str, Any]:
        """As :meth:`BackgroundWorker.stats`, plus the queue length."""
        stats = super().stats()
        stats["queued"] = self._queue.qsize() if self._queue is not None else 0
        return stats

    async def _serve(self) -> None:
        queue = self._queue
        assert queue is not None
        try:
            while True:
                self.before_queue_get()
                item = await queue.get()
                try:
                    if item is _STOP:
                        return
                    self.after_queue_get(item)
                    if not await self._launch(item):
                        return
                finally:
                    queue.task_done()
        finally:
            if self._stop_put is not None:  # ended before its sentinel found room
                self._stop_put.cancel()
                self._stop_put = None


class BackgroundEventWorker(BackgroundAsyncWorker):
    """Runs its target when triggered.

    Triggers that arrive while the target runs are merged into one more run
    after it, so a trigger is never lost and never queued twice.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._event: asyncio.Event | None = None

    def _prepare(self) -> None:
        self._event = asyncio.Event()

    def trigger_threadsafe(self, force: bool = False) -> None:
        """Trigger a run from any thread.

        Args:
            force: Accepted for neotasker compatibility.

        Raises:
            LeasePoolNotStartedError: If the worker is not running.
        """
        aloop = self._require_running("trigger_threadsafe")
        assert self._event is not None
        aloop.call_soon(self._event.set)

    async def trigger(self, force: bool = False) -> None:
        """Trigger a run from the worker's own loop."""
        self._require_worker_loop("trigger", "trigger_threadsafe()")
        self._require_running("trigger")
        assert self._event is not None
        self._event.set()

    def get_event_obj(self) -> asyncio.Event | None:
        """The worker's asyncio event (touch it only on the worker's loop)."""
        return self._event

    def send_stop_events(self) -> None:
        """Wake the waiting loop so that it sees the stop."""
        if self._event is not None:
            self._wake_threadsafe(self._event.set)

    async def _serve(self) -> None:
        event = self._event
        assert event is not None
        while self._active:
            await event.wait()
            event.clear()
            if not self._active or not await self._launch():
                return


def _choose(fn: Callable[..., Any], options: dict[str, Any]) -> type[BackgroundWorker]:
    if options.get("q") or options.get("queue"):
        return BackgroundQueueWorker
    if options.pop("e", None) or options.pop("event", None):
        return BackgroundEventWorker
    if "i" in options:
        options["interval"] = options.pop("i")
    if any(
        options.get(k) is not None for k in ("interval", "delay", "delay_after", "delay_before")
    ):
        return BackgroundIntervalWorker
    if inspect.iscoroutinefunction(fn):
        return BackgroundAsyncWorker
    return BackgroundWorker


@overload
def background_worker(fn: Callable[..., Any], /) -> BackgroundWorker: ...


@overload
def background_worker(
    **kwargs: Any,
) -> Callable[[Callable[..., Any]], BackgroundWorker]: ...


def background_worker(
    *args: Any, **kwargs: Any
) -> BackgroundWorker | Callable[[Callable[..., Any]], BackgroundWorker]:
    """Make a worker from a function: ``@background_worker`` or with options.

    The kind follows the options: ``q``/``queue`` gives a queue worker,
    ``e``/``event`` an event worker, ``interval``/``i``, ``delay`` or
    ``delay_before`` an interval worker; otherwise an async function gives
    a :class:`BackgroundAsyncWorker` and a plain one a
    :class:`BackgroundWorker`.  Other options (``name``, ``supervisor``,
    ``loop``, ``on_error`` ...) go to the worker; the name defaults to the
    function's.

    Returns:
        The worker (used bare) or a decorator that returns one.
    """

    def decorate(fn: Callable[..., Any]) -> BackgroundWorker:
        options = dict(kwargs)
        cls = _choose(fn, options)
        name = options.pop("name", None) or getattr(fn, "__name__", None)
        return cls(name, fn, **options)

    if len(args) == 1 and callable(args[0]) and not kwargs:
        return decorate(args[0])
    if args:
        raise TypeError(
            "background_worker takes the function alone or keyword options: "
            "@background_worker or @background_worker(interval=1)"
        )
    return decorate
