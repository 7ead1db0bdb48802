"""Argument validation shared by every constructor.

Every check rejects booleans, strings, NaN, infinities, and values outside
the allowed range with a :class:`ValueError` that names the argument and the
range, at construction time rather than on first use.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = [
    "check_duration",
    "check_optional_timeout",
    "check_positive_int",
]


def check_positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """Return ``value`` as an ``int`` if it is a whole number ``>= minimum``.

    Integer-like values (``4``, ``4.0``, a numpy integer) are accepted;
    fractions are rejected rather than truncated.

    Args:
        name: Argument name used in the error message.
        value: The value to check.
        minimum: Smallest allowed value.

    Returns:
        The value as a plain ``int``.

    Raises:
        ValueError: If the value is a bool, not a real number, not whole,
            not finite, or below ``minimum``.
    """
    rule = f"{name} must be an integer >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{rule}, got {value!r}")
    if isinstance(value, numbers.Integral):
        result = int(value)
    else:
        as_float = float(value)
        if not math.isfinite(as_float) or not as_float.is_integer():
            raise ValueError(f"{rule}, got {value!r}")
        result = int(as_float)
    if result < minimum:
        raise ValueError(f"{rule}, got {value!r}")
    return result


def check_duration(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a finite ``float`` number of seconds.

    Args:
        name: Argument name used in the error message.
        value: The value to check.
        allow_zero: Whether ``0`` is allowed (durations such as a grace
            period); otherwise the value must be strictly positive.

    Returns:
        The value as a ``float``.

    Raises:
        ValueError: If the value is a bool, not a real number, NaN, infinite,
            negative, or zero where zero is not allowed.
    """
    bound = ">= 0" if allow_zero else "> 0"
    rule = f"{name} must be a finite number of seconds {bound}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{rule}, got {value!r}")
    try:
        seconds = float(value)
    except OverflowError:
        raise ValueError(f"{rule}, got {value!r}") from None
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValueError(f"{rule}, got {value!r}")
    return seconds


def check_optional_timeout(name: str, value: Any) -> float | None:
    """Return ``None`` or a finite, non-negative number of seconds.

    Args:
        name: Argument name used in the error message.
        value: ``None`` (wait without limit) or a number of seconds.

    Returns:
        ``None`` or the timeout as a ``float``.

    Raises:
        ValueError: As :func:`check_duration` with ``allow_zero=True``.
    """
    if value is None:
        return None
    return check_duration(name, value, allow_zero=True)
