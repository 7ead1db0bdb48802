"""Executor backends: what a pool is made of.

A *backend* knows how to build one executor ("pool") for a manager, how to
tell that a pool is broken, and how to stop the work on a pool forcibly when
its lease is revoked.  The built-in backends are ``thread``, ``process`` and
``interpreter`` (Python 3.14's ``InterpreterPoolExecutor``); others, such as
the distributed one, plug in through :func:`register_backend`.

A manager opens a :class:`BackendSession` when it starts and closes it when
it stops; per-manager resources (a process-log listener, a cluster client)
live in the session.
"""

from __future__ import annotations

import concurrent.futures
import inspect
import logging
import sys
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol, runtime_checkable

from ..exceptions import UnsupportedBackendError
from .process_logging import ProcessLoggingConfig

__all__ = [
    "Backend",
    "BackendSession",
    "ExecutorBackend",
    "PoolSpec",
    "StoppingExecutor",
    "backend_availability",
    "get_backend",
    "register_backend",
]


class ExecutorBackend(str, Enum):
    """The built-in backends; their values are the names managers accept."""

    THREAD = "thread"
    PROCESS = "process"
    INTERPRETER = "interpreter"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class PoolSpec:
    """What a backend needs to build one pool.

    Attributes:
        index: The pool's sequence number within its manager (1, 2, ...).
        workers: Worker count (``workers_per_pool``).
        name: A name for the pool, used as its thread-name prefix where the
            executor supports one (``"<name_prefix>-<index>"``).
        options: Extra executor keyword arguments from the manager.
    """

    index: int
    workers: int
    name: str
    options: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class StoppingExecutor(Protocol):
    """An executor that enforces time limits and can stop a running call
    (a backend whose ``stops_calls`` is true builds these).

    Cancelling one of its futures while the call runs stops the worker
    running it, and the cancel succeeds.
    """

    def submit_limited(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        timeout: float | None = None,
        soft_timeout: float | None = None,
        name: str | None = None,
    ) -> concurrent.futures.Future[Any]:
        """Submit ``fn(*args, **kwargs)`` with time limits counted from its
        start; ``name`` names it in errors (default: ``fn``'s name)."""
        ...


class BackendSession:
    """A backend's per-manager state; the default builds nothing itself.

    Subclasses implement :meth:`create`; the other hooks have sensible
    defaults for ``concurrent.futures`` executors.
    """

    def create(self, spec: PoolSpec) -> Executor:
        """Build one pool.

        Raises:
            UnsupportedBackendError: Always, in the base class.
        """
        raise UnsupportedBackendError(
            f"{type(self).__name__} does not define create(spec)"
        )

    def is_broken(self, exc: BaseException) -> bool:
        """Whether ``exc`` (from a pool's future) means the pool is unusable."""
        return isinstance(exc, concurrent.futures.BrokenExecutor)

    def terminate(self, executor: Executor) -> None:
        """Stop the work running on ``executor`` if the backend can.

        Called when a lease is revoked or a bounded stop runs out of time.
        Threads cannot be killed, so the default does nothing.
        """

    def shutdown(self, executor: Executor, *, cancel_futures: bool) -> None:
        """Shut ``executor`` down and wait until its workers are joined."""
        executor.shutdown(wait=True, cancel_futures=cancel_futures)

    def close(self) -> None:
        """Release the session's own resources; called once, after every pool
        is shut down."""

    def describe(self) -> dict[str, Any]:
        """Backend-specific, JSON-serialisable details for ``stats()``."""
        return {}


class Backend:
    """A named way of building pools.

    Subclass it (overriding :meth:`open`, and :meth:`unavailable_reason`
    where the backend needs something optional) and pass an instance to
    :func:`register_backend`; or register a plain factory function.
    """

    name: str = ""

    #: Calls run in this process, on threads: the grinder hands them the
    #: item objects themselves and serves plain threads through its thread
    #: hand-off (``doc/architecture.md``).
    in_process: bool = False

    #: Calls and results travel pickled (processes, interpreters): a chunk
    #: pickles its outcomes item by item, and a chunk refused as a whole
    #: never ran, so its items may be sent again one by one.
    pickles_calls: bool = False

    #: Its pools are each a :class:`StoppingExecutor`: they enforce time limits
    #: and stop the worker of a cancelled running call.
    stops_calls: bool = False

    def unavailable_reason(self) -> str | None:
        """Why the backend cannot run here, or ``None`` when it can."""
        return None

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Reject unknown executor options at manager construction.

        Raises:
            ValueError: If an option cannot be passed to the executor.
        """

    def open(
        self,
        options: Mapping[str, Any],
        *,
        logger: logging.Logger,
        process_logging: ProcessLoggingConfig | None,
    ) -> BackendSession:
        """Start a session for one manager.

        Args:
            options: The manager's extra executor keyword arguments.
            logger: The manager's logger.
            process_logging: Log-forwarding configuration (process backend).

        Returns:
            The session the manager builds its pools with.
        """
        raise UnsupportedBackendError(f"backend {self.name!r} does not define open()")


def check_pool_options(cls: Callable[..., Any], options: Mapping[str, Any], what: str) -> None:
    """Reject ``max_workers`` and any option the pool class ``cls`` does not take."""
    if "max_workers" in options:
        raise ValueError("pass workers_per_pool instead of max_workers")
    try:
        inspect.signature(cls).bind_partial(**options)
    except TypeError as exc:
        raise ValueError(
            f"invalid executor option(s) {sorted(options)} for the {what} backend: {exc}"
        ) from None


class _ThreadSession(BackendSession):
    def __init__(self, cls: type[ThreadPoolExecutor], options: Mapping[str, Any]) -> None:
        self._cls = cls
        self._options = dict(options)

    def create(self, spec: PoolSpec) -> Executor:
        options = {"thread_name_prefix": spec.name, **self._options}
        return self._cls(max_workers=spec.workers, **options)


class _ThreadBackend(Backend):
    name = ExecutorBackend.THREAD.value
    in_process = True

    def executor_class(self) -> type[ThreadPoolExecutor]:
        return ThreadPoolExecutor

    def check_options(self, options: Mapping[str, Any]) -> None:
        check_pool_options(self.executor_class(), options, self.name)

    def open(
        self,
        options: Mapping[str, Any],
        *,
        logger: logging.Logger,
        process_logging: ProcessLoggingConfig | None,
    ) -> BackendSession:
        return _ThreadSession(self.executor_class(), options)


class _InterpreterBackend(_ThreadBackend):
    name = ExecutorBackend.INTERPRETER.value
    in_process = False  # each worker is a subinterpreter: calls are pickled
    pickles_calls = True

    def unavailable_reason(self) -> str | None:
        if hasattr(concurrent.futures, "InterpreterPoolExecutor"):
            return None
        version = ".".join(map(str, sys.version_info[:2]))
        return (
            "InterpreterPoolExecutor is available only on Python 3.14+. "
            f"(the interpreter backend needs it; this is Python {version})"
        )

    def executor_class(self) -> type[ThreadPoolExecutor]:
        # getattr: the class exists only on Python 3.14+, which mypy may not target.
        cls: type[ThreadPoolExecutor] = getattr(  # noqa: B009
            concurrent.futures, "InterpreterPoolExecutor"
        )
        return cls


class _FactorySession(BackendSession):
    def __init__(
        self, factory: Callable[[PoolSpec], Executor], options: Mapping[str, Any]
    ) -> None:
        self._factory = factory
        self._options = dict(options)

    def create(self, spec: PoolSpec) -> Executor:
        executor = self._factory(
            PoolSpec(spec.index, spec.workers, spec.name, self._options)
        )
        if not isinstance(executor, Executor):
            raise TypeError(
                f"backend factory must return a concurrent.futures.Executor, "
                f"got {type(executor).__name__}"
            )
        return executor


class _FactoryBackend(Backend):
    def __init__(self, name: str, factory: Callable[[PoolSpec], Executor]) -> None:
        self.name = name
        self._factory = factory

    def open(
        self,
        options: Mapping[str, Any],
        *,
        logger: logging.Logger,
        process_logging: ProcessLoggingConfig | None,
    ) -> BackendSession:
        return _FactorySession(self._factory, options)


_registry: dict[str, Backend] = {}
_registry_lock = threading.Lock()


def register_backend(
    name: str,
    backend: Backend | Callable[[PoolSpec], Executor],
    *,
    replace: bool = False,
) -> Backend:
    """Make a backend available to managers under ``name``.

    Args:
        name: The name passed as ``LeasedExecutorManager(backend=name)``.
        backend: A :class:`Backend` instance, or a factory called with a
            :class:`PoolSpec` (``spec.options`` holds the manager's extra
            keyword arguments) that returns a ``concurrent.futures.Executor``.
        replace: Allow replacing an existing registration.

    Returns:
        The registered backend.

    Raises:
        ValueError: If ``name`` is empty or taken (without ``replace``), or
            ``backend`` is neither a Backend nor callable.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"backend name must be a non-empty string, got {name!r}")
    key = name.strip().lower()
    if isinstance(backend, Backend):
        backend.name = key
        resolved = backend
    elif callable(backend):
        resolved = _FactoryBackend(key, backend)
    else:
        raise ValueError(
            f"backend must be a Backend or a factory callable, got {backend!r}"
        )
    with _registry_lock:
        if key in _registry and not replace:
            raise ValueError(
                f"backend {key!r} is already registered; pass replace=True to replace it"
            )
        _registry[key] = resolved
    return resolved


def get_backend(backend: ExecutorBackend | str) -> Backend:
    """Look a backend up by enum value or name (case-insensitive).

    Raises:
        UnsupportedBackendError: If no backend has that name, or it cannot
            run here (the message says why and what is needed).
    """
    key = backend.value if isinstance(backend, ExecutorBackend) else backend
    with _registry_lock:
        found = _registry.get(key.lower()) if isinstance(key, str) else None
        known = ", ".join(_registry)  # registration order: the built-ins first
    if found is None:
        raise UnsupportedBackendError(
            f"Unsupported backend {backend!r}. Supported: {known} "
            "(a name or an ExecutorBackend member; register_backend() adds more)"
        )
    reason = found.unavailable_reason()
    if reason is not None:
        raise UnsupportedBackendError(reason)
    return found


def backend_availability() -> dict[str, str | None]:
    """Every registered backend with ``None`` (usable) or why it is not."""
    with _registry_lock:
        backends = dict(_registry)
    return {name: backends[name].unavailable_reason() for name in sorted(backends)}


THREAD_BACKEND = _ThreadBackend()
INTERPRETER_BACKEND = _InterpreterBackend()
