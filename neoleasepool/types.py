"""Type aliases shared across layers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

__all__ = ["SizeProvider", "Stats", "WaitArg"]

#: A callable returning the current number of units (devices, tenants, ...).
SizeProvider: TypeAlias = Callable[[], Any]

#: A JSON-serialisable diagnostic snapshot.
Stats: TypeAlias = dict[str, Any]

#: How long a stop waits: ``True`` (no limit), ``False`` (do not wait) or
#: a number of seconds.
WaitArg: TypeAlias = "bool | float"
