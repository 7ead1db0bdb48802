"""Module-level callables for the Dask backend tests.

Dask worker processes unpickle what they run by reference, so these live in
an importable module (``tests.dask_work``).  Signals between a test and its
calls go through Dask's own cluster-wide ``Event``: the calls block on
something real instead of sleeping.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

#: How long a blocked call waits for its release before giving up.
RELEASE_TIMEOUT = 60.0


def square(value: int) -> int:
    """Return ``value * value``."""
    return value * value


def fresh_token() -> str:
    """A new random token on every call (an impure function)."""
    return uuid.uuid4().hex


def echo_kwargs(**kwargs: Any) -> dict[str, Any]:
    """Return the keyword arguments the call received."""
    return kwargs


def block_until(started: str, release: str, value: int) -> int:
    """Set the Dask event ``started``, wait for ``release``, return ``value``."""
    from distributed import Event

    Event(started).set()
    if not Event(release).wait(timeout=RELEASE_TIMEOUT):
        raise TimeoutError(f"event {release!r} was not set within {RELEASE_TIMEOUT}s")
    return value


def kill_worker() -> None:
    """Kill the Dask worker process running this call, as an OOM kill would."""
    os._exit(3)
