"""The ``"dask"`` backend: lease executors of a Dask distributed cluster.

When one machine is not enough, the same manager and grinder code can run
its work on a Dask cluster: each pool is a ``concurrent.futures`` executor
of the cluster (``Client.get_executor(pure=False, ...)``), wrapped so that
``workers_per_pool`` caps the calls a pool has on the cluster at once.
Leases, expiry, draining, sizing, ``stats()`` and the grinder work on top of
it unchanged.

Dask is an optional extra (``pip install neoleasepool[dask]``): this module
imports ``distributed`` only when a manager starts a session, so importing
neoleasepool never imports it.

Manager options (the manager's ``**executor_kwargs``):

* ``dask_client``: a ready ``distributed.Client``; the manager uses it and
  never closes it.
* ``dask_address``: the scheduler's address (``"tcp://host:8786"``); the
  session creates its own client (with ``dask_security`` for TLS clusters)
  and closes it when the manager stops.
* ``dask_workers``: pin every pool to these workers (addresses, names or
  host names).  Worker *names* survive a worker restart; addresses do not.

Failures: a call whose worker died (``distributed.KilledWorker``, once
Dask's ``allowed-failures`` retries are used up), or that the cluster
dropped (the client lost its scheduler connection, or ``client.restart()``
cancelled it: :class:`DaskWorkLostError`), fails alone; the manager retires
that pool and leases a fresh one, which works as soon as the client is
connected again.
"""

from __future__ import annotations

import concurrent.futures
import functools
import importlib
import importlib.util
import logging
import threading
import traceback
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, Future
from typing import Any, ParamSpec, TypeVar

from ..exceptions import LeasePoolError
from .base import Backend, BackendSession, PoolSpec
from .process_logging import ProcessLoggingConfig

__all__ = ["DaskBackend", "DaskExecutor", "DaskWorkLostError"]

P = ParamSpec("P")
T = TypeVar("T")

#: The options this backend accepts; anything else is a typo.
OPTIONS = frozenset({"dask_client", "dask_address", "dask_security", "dask_workers"})

INSTALL_HINT = "pip install neoleasepool[dask]"


class DaskWorkLostError(LeasePoolError, ConnectionError):
    """The Dask cluster lost a call: the client lost its connection to the
    scheduler, or the cluster cancelled the call (``client.restart()``).

    The call may or may not have run; submit it again.  The manager treats
    the pool as broken and replaces it.
    """


_Call = tuple["Future[Any]", Callable[..., Any], tuple[Any, ...]]


class DaskExecutor(Executor):
    """A Dask executor that keeps at most ``limit`` calls on the cluster.

    Calls beyond the limit wait in a local queue (``submit`` never blocks)
    and are sent as earlier ones finish.  A call sent to the cluster counts
    as running: its future can no longer be cancelled, as with a thread pool;
    :meth:`terminate` cancels such calls on the cluster.

    Args:
        client: The ``distributed.Client`` to submit to.
        limit: Most calls on the cluster at once (``workers_per_pool``).
        name: The pool's name, shown in ``repr``.
        workers: Pin calls to these workers (``None``: any worker).
    """

    def __init__(
        self, client: Any, limit: int, name: str, workers: Sequence[str | int] | None = None
    ) -> None:
        options: dict[str, Any] = {"pure": False}
        if workers is not None:
            options["workers"] = list(workers)
        self._client = client
        self._inner: Executor = client.get_executor(**options)
        self._limit = limit
        self._name = name
        self._lock = threading.Lock()
        self._queue: deque[_Call] = deque()
        self._in_flight: dict[Future[Any], Future[Any]] = {}  # inner -> outer
        self._idle = threading.Condition(self._lock)
        self._shutdown = False
        self._terminated = False
        self._lost = False

    def __repr__(self) -> str:
        with self._lock:
            state = "shut down" if self._shutdown else "open"
            return (
                f"<DaskExecutor {self._name} {state} {len(self._in_flight)}/{self._limit} "
                f"on the cluster with {len(self._queue)} waiting>"
            )

    @property
    def lost(self) -> bool:
        """Whether a call of this pool was lost to a dead worker or scheduler."""
        return self._lost

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Run ``fn(*args, **kwargs)`` on the cluster.

        Raises:
            RuntimeError: If the executor is shut down.
            DaskWorkLostError: If the client is not connected to its
                scheduler (Dask would hold the call until it reconnects).
        """
        call: Callable[..., Any] = fn
        if kwargs:  # Dask would take keyword arguments like ``priority`` as its own
            call = functools.partial(fn, **kwargs)
        outer: Future[Any] = Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError(f"cannot submit to {self._name}: it is shut down")
            if len(self._in_flight) >= self._limit:
                self._queue.append((outer, call, args))
                return outer
            self._check_connected()
            outer.set_running_or_notify_cancel()
            inner = self._send_locked(outer, call, args)
        # Outside the lock: the callback runs inline if ``inner`` is done.
        inner.add_done_callback(self._finished)
        return outer

    def _check_connected(self) -> None:
        status = str(getattr(self._client, "status", "running"))
        if status != "running":
            self._lost = True
            raise DaskWorkLostError(
                f"the Dask client is {status!r}, not connected to its scheduler; "
                "the call was not sent (the pool is replaced; retry once the "
                "cluster is back)"
            )

    def _send_locked(
        self, outer: Future[Any], fn: Callable[..., Any], args: tuple[Any, ...]
    ) -> Future[Any]:
        inner = self._inner.submit(fn, *args)
        self._in_flight[inner] = outer
        return inner

    def _finished(self, inner: Future[Any]) -> None:
        """Done-callback of a call on the cluster; runs on Dask's loop thread."""
        with self._lock:
            outer = self._in_flight.pop(inner)
            terminated = self._terminated
        if not inner.cancelled():
            exc = inner.exception()
            if exc is None:
                outer.set_result(inner.result())
            else:
                if _is_lost(exc):
                    self._lost = True
                outer.set_exception(exc)
        elif terminated:
            outer.set_exception(
                concurrent.futures.CancelledError(
                    f"{self._name} was terminated (lease revoked or stop timed "
                    "out); the call was cancelled on the cluster"
                )
            )
        else:
            self._lost = True
            outer.set_exception(DaskWorkLostError(self._lost_reason()))
        self._pump()

    def _lost_reason(self) -> str:
        status = str(getattr(self._client, "status", "unknown"))
        if status != "running":
            return (
                f"the Dask client lost its connection to the scheduler (status "
                f"{status!r}) while the call was on the cluster; it may or may "
                "not have run"
            )
        return (
            "the Dask cluster cancelled the call (client.restart() or a cancel "
            "by other code); it may or may not have run"
        )

    def _pump(self) -> None:
        """Send queued calls while there is room; fail those we cannot send."""
        while True:
            inner: Future[Any] | None = None
            with self._lock:
                if not self._queue or len(self._in_flight) >= self._limit:
                    if not self._in_flight and not self._queue:
                        self._idle.notify_all()
                    return
                outer, fn, args = self._queue.popleft()
                if not outer.set_running_or_notify_cancel():
                    continue  # cancelled while it waited
                try:
                    self._check_connected()
                    inner = self._send_locked(outer, fn, args)
                except Exception as exc:  # handed to this call's future
                    failure: Exception = exc
            if inner is not None:
                inner.add_done_callback(self._finished)
            else:
                outer.set_exception(failure)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Refuse new calls; wait for the calls already submitted.

        Dask's own ``shutdown`` is never called: it has no
        ``cancel_futures`` and ``wait=False`` cancels running calls.

        Args:
            wait: Wait until every submitted call has ended.
            cancel_futures: Cancel the calls still waiting in the local
                queue (calls on the cluster run on; see :meth:`terminate`).
        """
        with self._lock:
            self._shutdown = True
            cancelled = list(self._queue) if cancel_futures else []
            if cancel_futures:
                self._queue.clear()
        for outer, _fn, _args in cancelled:
            outer.cancel()
        if wait:
            with self._lock:
                self._idle.wait_for(lambda: not self._in_flight and not self._queue)

    def terminate(self) -> None:
        """Cancel every call of this pool, queued or on the cluster (best
        effort: a task already running on a worker runs to its end there)."""
        with self._lock:
            self._terminated = True
            queued = list(self._queue)
            self._queue.clear()
            inner = list(self._in_flight)
        for outer, _fn, _args in queued:
            outer.cancel()
        for future in inner:
            future.cancel()  # Dask's executor cancels the task on the cluster


def _is_lost(exc: BaseException) -> bool:
    """Whether ``exc`` says the cluster lost the call (not the call's own error)."""
    if isinstance(exc, DaskWorkLostError):
        return True
    lost = _lost_error_types()
    return bool(lost) and isinstance(exc, lost)


@functools.cache
def _lost_error_types() -> tuple[type[BaseException], ...]:
    """Dask's errors for a dead worker or a closed connection (empty when
    distributed is not installed)."""
    try:
        killed = importlib.import_module("distributed").KilledWorker
        closed = importlib.import_module("distributed.comm.core").CommClosedError
    except ImportError:
        return ()
    return (killed, closed)


class _DaskSession(BackendSession):
    def __init__(self, options: Mapping[str, Any], logger: logging.Logger) -> None:
        workers = options.get("dask_workers")
        self._workers: list[str | int] | None = None if workers is None else _worker_list(workers)
        self._logger = logger
        client = options.get("dask_client")
        self._owns_client = client is None
        if client is None:
            distributed = importlib.import_module("distributed")
            address = options["dask_address"]
            try:
                client = distributed.Client(
                    address, security=options.get("dask_security"), set_as_default=False
                )
            except OSError as exc:
                _stop_failed_client(exc, distributed.Client)
                raise ConnectionError(
                    f"could not connect to the Dask scheduler at {address!r}: {exc}"
                ) from exc
            logger.info("dask client connected scheduler=%s", address)
        self._client: Any = client

    def create(self, spec: PoolSpec) -> Executor:
        return DaskExecutor(self._client, spec.workers, spec.name, self._workers)

    def is_broken(self, exc: BaseException) -> bool:
        return _is_lost(exc)

    def terminate(self, executor: Executor) -> None:
        # A pool retired because its worker or scheduler was lost keeps its
        # other calls: they run on (or fail) by themselves.
        if isinstance(executor, DaskExecutor) and not executor.lost:
            executor.terminate()

    def shutdown(self, executor: Executor, *, cancel_futures: bool) -> None:
        executor.shutdown(wait=True, cancel_futures=cancel_futures)

    def close(self) -> None:
        if self._owns_client:
            self._client.close()
            self._logger.info("dask client closed")

    def describe(self) -> dict[str, Any]:
        scheduler = getattr(getattr(self._client, "scheduler", None), "address", None)
        return {
            "scheduler": None if scheduler is None else str(scheduler),
            "client_status": str(getattr(self._client, "status", "unknown")),
            "owns_client": self._owns_client,
            "workers": self._workers,
        }


def _stop_failed_client(exc: BaseException, client_class: type[Any]) -> None:
    """Stop the event-loop thread of a Client whose constructor failed.

    A ``distributed.Client`` that cannot connect marks itself closed but
    leaves its "IO loop" thread running (distributed 2026.8); nobody else
    holds the half-built client, so find it in the traceback.
    """
    for frame, _line in traceback.walk_tb(exc.__traceback__):
        client = frame.f_locals.get("self")
        if isinstance(client, client_class):
            runner = getattr(client, "_loop_runner", None)
            if runner is not None:
                runner.stop()
            return


def _worker_list(workers: Any) -> list[str | int]:
    return [workers] if isinstance(workers, (str, int)) else list(workers)


def _is_worker_id(worker: object) -> bool:
    if isinstance(worker, bool):
        return False
    return (isinstance(worker, str) and bool(worker)) or isinstance(worker, int)


class DaskBackend(Backend):
    """Pools that are executors of a Dask cluster; see the module docstring."""

    name = "dask"

    def unavailable_reason(self) -> str | None:
        if importlib.util.find_spec("distributed") is None:
            return (
                "the dask backend needs Dask's distributed scheduler, which is not "
                f"installed: {INSTALL_HINT}"
            )
        return None

    def check_options(self, options: Mapping[str, Any]) -> None:
        unknown = sorted(set(options) - OPTIONS)
        if unknown:
            raise ValueError(
                f"unknown option(s) {unknown} for the dask backend; it accepts "
                f"{sorted(OPTIONS)}"
            )
        client = options.get("dask_client")
        address = options.get("dask_address")
        if (client is None) == (address is None):
            raise ValueError(
                "the dask backend needs exactly one of dask_client=<distributed.Client> "
                "or dask_address='tcp://host:port'"
            )
        if client is not None and not callable(getattr(client, "get_executor", None)):
            raise ValueError(f"dask_client must be a distributed.Client, got {client!r}")
        if address is not None and (not isinstance(address, str) or not address.strip()):
            raise ValueError(
                f"dask_address must be a scheduler address such as "
                f"'tcp://host:8786', got {address!r}"
            )
        if options.get("dask_security") is not None and client is not None:
            raise ValueError(
                "dask_security applies only with dask_address; a dask_client "
                "carries its own security"
            )
        workers = options.get("dask_workers")
        if workers is not None:
            listed = _worker_list(workers) if isinstance(workers, (str, int, list, tuple)) else []
            if not listed or not all(_is_worker_id(w) for w in listed):
                raise ValueError(
                    "dask_workers must be a worker address or name, or a non-empty "
                    f"list of them, got {workers!r}"
                )

    def open(
        self,
        options: Mapping[str, Any],
        *,
        logger: logging.Logger,
        process_logging: ProcessLoggingConfig | None,
    ) -> BackendSession:
        return _DaskSession(options, logger)
