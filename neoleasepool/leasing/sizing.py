"""The adaptive sizing rule.

A manager aims to keep::

    target = min(max_pools, max(min_pools, ceil(units / units_per_pool)))

pools, where ``units`` is whatever the user's ``size_provider`` counts
(connected devices, tenants, queues...).  A provider that raises, or returns
something that is not a usable count, counts as zero units for that check:
a broken signal must never crash the manager.
"""

from __future__ import annotations

import logging
import math
import numbers
from typing import Any

from ..types import SizeProvider

__all__ = ["read_units", "target_pools"]


def read_units(provider: SizeProvider | None, logger: logging.Logger) -> int | float:
    """Call ``provider`` and return a usable, non-negative unit count.

    ``None`` (no provider), an exception, a bool, a non-number, NaN or a
    negative value all count as ``0`` (logged at DEBUG); ``+inf`` stays
    infinite so that the target becomes ``max_pools``.
    """
    if provider is None:
        return 0
    try:
        units: Any = provider()
    except Exception:
        logger.debug("size_provider raised; counting 0 units", exc_info=True)
        return 0
    if isinstance(units, bool) or not isinstance(units, numbers.Real):
        logger.debug("size_provider returned a non-number type=%s; counting 0 units",
                     type(units).__name__)
        return 0
    if isinstance(units, numbers.Integral):
        return max(0, int(units))
    value = float(units)
    if math.isnan(value) or value < 0:
        logger.debug("size_provider returned %s; counting 0 units", value)
        return 0
    return value


def target_pools(
    units: int | float, *, min_pools: int, max_pools: int, units_per_pool: int
) -> int:
    """Apply the sizing rule to a unit count from :func:`read_units`."""
    if isinstance(units, int):
        wanted = -(-units // units_per_pool)
    elif math.isinf(units):
        wanted = max_pools
    else:
        wanted = math.ceil(units / units_per_pool)
    return min(max_pools, max(min_pools, wanted))
