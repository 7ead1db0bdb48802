"""A grinder's settings, checked once, at construction.

:func:`grinder_options` turns the keyword arguments of
:class:`~neoleasepool.grinder.facade.WorkGrinder` into a frozen
:class:`GrinderOptions`, rejecting bad input with a ``ValueError`` that
names the argument and the allowed range, in leasepool 0.1.3's words
(which callers may match on).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .._util.validation import check_duration, check_positive_int

__all__ = ["GrinderOptions", "grinder_options"]

_default_logger = logging.getLogger("neoleasepool.grinder")


@dataclass(frozen=True)
class GrinderOptions:
    """A grinder's checked settings (see the grinder's arguments)."""

    max_wait: float
    threshold: int
    lease_seconds: float
    owner_prefix: str
    logger: logging.Logger
    chunk_size: int | None
    item_timeout: float | None
    metrics: bool = True


def grinder_options(
    *,
    max_wait_seconds: object,
    batch_size_threshold: object,
    lease_seconds: object,
    owner_prefix: object,
    logger: object,
    chunk_size: object,
    item_timeout: object = None,
    metrics: object = True,
) -> GrinderOptions:
    """Check the grinder's arguments.

    Raises:
        ValueError: If one is out of range; the message names it.
    """
    max_wait = check_duration("max_wait_seconds", max_wait_seconds, leasepool=True)
    threshold = check_positive_int("batch_size_threshold", batch_size_threshold, leasepool=True)
    seconds = check_duration("lease_seconds", lease_seconds, leasepool=True)
    if not isinstance(owner_prefix, str) or not owner_prefix:
        raise ValueError(f"owner_prefix must be a non-empty string, got {owner_prefix!r}")
    if logger is not None and not isinstance(logger, logging.Logger):
        raise ValueError(f"logger must be a logging.Logger or None, got {logger!r}")
    fixed = (
        None if chunk_size is None
        else check_positive_int("chunk_size", chunk_size, leasepool=True)
    )
    timeout = None if item_timeout is None else check_duration("item_timeout", item_timeout)
    if not isinstance(metrics, bool):
        raise ValueError(f"metrics must be True or False, got {metrics!r}")
    return GrinderOptions(
        max_wait, threshold, seconds, owner_prefix, logger or _default_logger, fixed, timeout,
        metrics,
    )
