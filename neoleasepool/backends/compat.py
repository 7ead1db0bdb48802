"""leasepool's backend helpers, for code that imports them directly.

``from leasepool.backends import normalize_backend, resolve_executor_cls,
build_executor`` migrates by changing the import: these behave as
leasepool 0.1.3's do (same signatures, results and errors). They know only
the three built-in backends, as leasepool's do; a manager also accepts the
names of backends added with :func:`~neoleasepool.backends.register_backend`.

Like leasepool's, :func:`build_executor` builds a plain executor with the
options given, so a process pool uses the platform's default start method
unless ``executor_kwargs`` names an ``mp_context``; the managers choose a
safe one themselves (``doc/migration.md``).
"""

from __future__ import annotations

import concurrent.futures
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

from ..exceptions import UnsupportedBackendError
from .base import ExecutorBackend

__all__ = ["build_executor", "normalize_backend", "resolve_executor_cls"]


def normalize_backend(backend: ExecutorBackend | str) -> ExecutorBackend:
    """Return the :class:`ExecutorBackend` member a backend name stands for.

    Args:
        backend: A member, or its name in any case (``"THREAD"``).

    Returns:
        The member.

    Raises:
        UnsupportedBackendError: (a ``ValueError``) If the name is not a
            built-in backend's.
    """
    if isinstance(backend, ExecutorBackend):
        return backend
    try:
        return ExecutorBackend(str(backend).lower())
    except ValueError:
        supported = ", ".join(member.value for member in ExecutorBackend)
        raise UnsupportedBackendError(
            f"Unsupported backend {backend!r}. Supported: {supported} "
            "(backends added with register_backend() are passed to a manager by name)"
        ) from None


def resolve_executor_cls(backend: ExecutorBackend | str) -> type[Executor]:
    """Return the ``concurrent.futures`` executor class of a built-in backend.

    Raises:
        UnsupportedBackendError: If the name is unknown, or the interpreter
            backend is asked for before Python 3.14.
    """
    member = normalize_backend(backend)
    if member is ExecutorBackend.THREAD:
        return ThreadPoolExecutor
    if member is ExecutorBackend.PROCESS:
        return ProcessPoolExecutor
    found: type[Executor] | None = getattr(concurrent.futures, "InterpreterPoolExecutor", None)
    if found is None:
        raise UnsupportedBackendError(
            "InterpreterPoolExecutor is available only on Python 3.14+. "
            "(use backend='thread' or 'process' here)"
        )
    return found


def build_executor(
    *,
    backend: ExecutorBackend | str,
    max_workers: int,
    name_prefix: str,
    executor_seq: int,
    executor_kwargs: dict[str, Any],
) -> Executor:
    """Build one executor of a built-in backend.

    Thread and interpreter pools get ``thread_name_prefix=
    "<name_prefix>-<executor_seq>"`` unless ``executor_kwargs`` sets one;
    process pools take no thread-name prefix.

    Raises:
        UnsupportedBackendError: As :func:`resolve_executor_cls`.
    """
    cls = resolve_executor_cls(backend)
    options = dict(executor_kwargs)
    if normalize_backend(backend) is not ExecutorBackend.PROCESS:
        options.setdefault("thread_name_prefix", f"{name_prefix}-{executor_seq}")
    executor: Executor = cls(max_workers=max_workers, **options)  # type: ignore[call-arg]
    return executor
