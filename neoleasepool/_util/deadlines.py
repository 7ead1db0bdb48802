"""Deadlines: absolute :func:`time.monotonic` times for bounded waits.

A stop that waits in several steps (schedulers, then aloops, then the loop)
turns its ``wait`` argument into one deadline up front and gives each step
what is left of it, so the steps together never take longer than asked.

``None`` always means "no limit".
"""

from __future__ import annotations

import time

from ..types import WaitArg
from .validation import check_duration

__all__ = ["deadline_after", "deadline_from_wait", "remaining", "seconds_left"]


def deadline_from_wait(wait: WaitArg) -> float | None:
    """Turn a ``wait`` argument into an absolute :func:`time.monotonic` deadline.

    Args:
        wait: ``True`` (no limit), ``False`` (do not wait) or seconds.

    Returns:
        ``None`` for no limit, otherwise the deadline.

    Raises:
        ValueError: If ``wait`` is a negative, NaN or infinite number, or not
            a bool or number.
    """
    if wait is True:
        return None
    if wait is False:
        return time.monotonic()
    return time.monotonic() + check_duration("wait", wait, allow_zero=True)


def deadline_after(seconds: float | None) -> float | None:
    """The deadline ``seconds`` from now; ``None`` (no limit) stays ``None``.

    ``seconds`` must already be validated (for example by
    :func:`~neoleasepool._util.validation.check_optional_timeout`).
    """
    return None if seconds is None else time.monotonic() + seconds


def seconds_left(deadline: float | None) -> float | None:
    """Seconds until ``deadline``, never negative; ``None`` for no limit.

    The form a ``timeout=`` argument takes.
    """
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def remaining(deadline: float | None) -> WaitArg:
    """The ``wait`` argument left before ``deadline`` (``True`` if unbounded).

    The form a ``stop(wait=...)`` argument takes.
    """
    left = seconds_left(deadline)
    return True if left is None else left
