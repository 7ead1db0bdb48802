"""A manager's settings, checked once, at construction.

:func:`manager_options` turns the keyword arguments of
:class:`~neoleasepool.leasing.manager.LeasedExecutorManager` into a frozen
:class:`ManagerOptions`, rejecting bad input with a ``ValueError`` that
names the argument and the allowed range (booleans, NaN, infinities,
strings, zero or negative and fractional counts).  The messages are
leasepool 0.1.3's, which callers may match on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from .._util.validation import check_duration, check_positive_int
from ..backends.base import Backend, ExecutorBackend, get_backend
from ..backends.process_logging import ProcessLoggingConfig, resolve_log_level
from ..types import SizeProvider

__all__ = ["ManagerOptions", "manager_options"]

_default_logger = logging.getLogger("neoleasepool.manager")


@dataclass(frozen=True)
class ManagerOptions:
    """A manager's checked settings (see the manager's arguments)."""

    backend: Backend
    max_pools: int
    min_pools: int
    units_per_pool: int
    workers_per_pool: int
    size_provider: SizeProvider | None
    check_interval: float
    default_lease_seconds: float
    grace_seconds: float
    surplus_idle_seconds: float
    name_prefix: str
    logger: logging.Logger
    process_logging: ProcessLoggingConfig | None
    executor_kwargs: dict[str, Any] = field(default_factory=dict)


def manager_options(
    *,
    backend: ExecutorBackend | str,
    max_pools: int,
    min_pools: int,
    units_per_pool: int,
    size_provider: SizeProvider | None,
    check_interval: float,
    default_lease_seconds: float,
    lease_grace_seconds: float,
    workers_per_pool: int,
    name_prefix: str,
    logger: logging.Logger | None,
    process_logging: ProcessLoggingConfig | None,
    forward_process_logs: bool,
    process_log_level: int | str,
    process_log_target_logger: logging.Logger | None,
    clear_process_log_handlers: bool,
    surplus_idle_seconds: float,
    executor_kwargs: dict[str, Any],
) -> ManagerOptions:
    """Check a manager's arguments, in leasepool's order (the first bad one
    is the one reported): the counts, the durations, ``min_pools`` against
    ``max_pools``, the backend, process logging; then our own arguments.

    Raises:
        ValueError: If an argument is out of range, or an executor option
            is unknown to the backend.
        UnsupportedBackendError: If the backend is unknown or unavailable.
    """
    top, bottom, units, workers = _check_counts(
        max_pools, min_pools, units_per_pool, workers_per_pool
    )
    lease_seconds = check_duration(
        "default_lease_seconds", default_lease_seconds, leasepool=True
    )
    grace = check_duration(
        "lease_grace_seconds", lease_grace_seconds, allow_zero=True, leasepool=True
    )
    interval = check_duration("check_interval", check_interval, leasepool=True)
    if bottom > top:
        raise ValueError(
            f"min_pools cannot be greater than max_pools: got min_pools={bottom}, "
            f"max_pools={top}"
        )
    resolved = get_backend(backend)
    if size_provider is not None and not callable(size_provider):
        raise ValueError(f"size_provider must be a callable or None, got {size_provider!r}")
    surplus = check_duration(
        "surplus_idle_seconds", surplus_idle_seconds, allow_zero=True, leasepool=True
    )
    if not isinstance(name_prefix, str) or not name_prefix:
        raise ValueError(f"name_prefix must be a non-empty string, got {name_prefix!r}")
    if logger is not None and not isinstance(logger, logging.Logger):
        raise ValueError(f"logger must be a logging.Logger or None, got {logger!r}")
    log_config = resolve_process_logging(
        process_logging, forward_process_logs, process_log_level,
        process_log_target_logger, clear_process_log_handlers, resolved.name,
    )
    resolved.check_options(executor_kwargs)
    return ManagerOptions(
        backend=resolved,
        max_pools=top,
        min_pools=bottom,
        units_per_pool=units,
        workers_per_pool=workers,
        size_provider=size_provider,
        check_interval=interval,
        default_lease_seconds=lease_seconds,
        grace_seconds=grace,
        surplus_idle_seconds=surplus,
        name_prefix=name_prefix,
        logger=logger or _default_logger,
        process_logging=log_config,
        executor_kwargs=executor_kwargs,
    )


def _check_counts(
    max_pools: int, min_pools: int, units_per_pool: int, workers_per_pool: int
) -> tuple[int, int, int, int]:
    counts = (
        ("max_pools", max_pools), ("min_pools", min_pools),
        ("units_per_pool", units_per_pool), ("workers_per_pool", workers_per_pool),
    )
    top, bottom, units, workers = (
        check_positive_int(name, value, leasepool=True) for name, value in counts
    )
    return top, bottom, units, workers


def resolve_process_logging(
    config: ProcessLoggingConfig | None,
    forward: bool,
    level: int | str,
    target: logging.Logger | None,
    clear: bool,
    backend_name: str,
) -> ProcessLoggingConfig | None:
    """Fold the ``forward_process_logs``/``process_log_*`` shortcuts into one
    :class:`~neoleasepool.backends.process_logging.ProcessLoggingConfig`.

    Returns:
        The configuration, or ``None`` when no forwarding was asked for.

    Raises:
        ValueError: If an argument has the wrong type, both the config and
            a shortcut are given, or forwarding is asked of a backend other
            than ``"process"``.
    """
    if not isinstance(forward, bool):
        raise ValueError(f"forward_process_logs must be a bool, got {forward!r}")
    if not isinstance(clear, bool):
        raise ValueError(f"clear_process_log_handlers must be a bool, got {clear!r}")
    resolve_log_level(level, "process_log_level")
    if target is not None and not isinstance(target, logging.Logger):
        raise ValueError(
            f"process_log_target_logger must be a logging.Logger or None, got {target!r}"
        )
    shortcuts_used = forward or level != logging.INFO or target is not None or clear is not True
    if config is not None and shortcuts_used:
        raise ValueError(
            "Pass either process_logging or the forward_process_logs/process_log_* "
            "arguments, not both. (process_logging=ProcessLoggingConfig(...) holds "
            "the same settings)"
        )
    if config is not None and not isinstance(config, ProcessLoggingConfig):
        raise ValueError(f"process_logging must be a ProcessLoggingConfig, got {config!r}")
    if config is None and forward:
        config = ProcessLoggingConfig(
            enabled=True, level=level, target_logger=target, clear_child_handlers=clear
        )
    if config is not None and config.enabled and backend_name != "process":
        raise ValueError(
            "process log forwarding is only supported for process backend: got "
            f"backend={backend_name!r} (use backend='process')"
        )
    return config
