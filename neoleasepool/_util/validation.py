"""Argument validation shared by every constructor.

Every check rejects booleans, NaN, infinities, non-numbers, and values
outside the allowed range with a :class:`ValueError` that names the
argument and the range, at construction time rather than on first use.

The messages begin with leasepool 0.1.3's words for the same mistake
(``max_pools must be > 0``, ``check_interval must be a finite number > 0``),
which its users' tests and log filters match, and then say what we got
and what is allowed: ``max_pools must be > 0: got 0 (an integer >= 1)``.

The arguments leasepool also takes follow its rules exactly
(``leasepool=True``): counts must be true integers (``operator.index``, so
``4`` or a numpy integer, not ``4.0``), and durations are anything
``float()`` reads (``2.5``, ``"2.5"``, a ``Decimal``), except booleans.
Our own arguments keep the stricter default: a count may be a whole float,
a duration must be a real number.
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any

__all__ = [
    "check_duration",
    "check_optional_timeout",
    "check_positive_int",
]


def check_positive_int(
    name: str, value: Any, *, minimum: int = 1, leasepool: bool = False
) -> int:
    """Return ``value`` as an ``int`` if it is a whole number ``>= minimum``.

    Args:
        name: Argument name used in the error message.
        value: The value to check.
        minimum: Smallest allowed value.
        leasepool: Accept only true integers (``operator.index``), as
            leasepool does; otherwise whole floats (``4.0``) pass too.

    Returns:
        The value as a plain ``int``.

    Raises:
        ValueError: If the value is a bool, not a whole number, not finite,
            or below ``minimum``.
    """
    result = _as_int(value, leasepool)
    if result is None:
        raise ValueError(
            f"{name} must be an integer {_bound(minimum)}: got {value!r} "
            f"(an integer >= {minimum})"
        )
    if result < minimum:
        raise ValueError(
            f"{name} must be {_bound(minimum)}: got {value!r} (an integer >= {minimum})"
        )
    return result


def _bound(minimum: int) -> str:
    return "> 0" if minimum == 1 else f">= {minimum}"


def _as_int(value: Any, strict: bool) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        pass
    if strict or not isinstance(value, numbers.Real):
        return None
    as_float = float(value)
    if not math.isfinite(as_float) or not as_float.is_integer():
        return None
    return int(as_float)


def check_duration(
    name: str, value: Any, *, allow_zero: bool = False, leasepool: bool = False
) -> float:
    """Return ``value`` as a finite ``float`` number of seconds.

    Args:
        name: Argument name used in the error message.
        value: The value to check.
        allow_zero: Whether ``0`` is allowed (durations such as a grace
            period); otherwise the value must be strictly positive.
        leasepool: Accept whatever ``float()`` reads (numeric strings,
            ``Decimal``), as leasepool does; otherwise only real numbers.

    Returns:
        The value as a ``float``.

    Raises:
        ValueError: If the value is a bool, not a number, NaN, infinite,
            negative, or zero where zero is not allowed.
    """
    bound = ">= 0" if allow_zero else "> 0"
    seconds = _as_float(value, leasepool)
    if seconds is None or not math.isfinite(seconds):
        kinds = "a number or a numeric string" if leasepool else "an int or a float"
        raise ValueError(
            f"{name} must be a finite number {bound}: got {value!r} "
            f"(seconds, as {kinds})"
        )
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValueError(
            f"{name} must be {bound}: got {value!r} (a finite number of seconds {bound})"
        )
    return seconds


def _as_float(value: Any, lenient: bool) -> float | None:
    if isinstance(value, bool) or not (lenient or isinstance(value, numbers.Real)):
        return None
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


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
