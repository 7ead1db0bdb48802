"""neoleasepool: leased executors, batching and supervision for async and sync code.

The public names are re-exported here; each lives in a small module of its
own (see ``DESIGN`` in the docs for the layers).
"""

from __future__ import annotations

import logging

from ._version import __version__
from .exceptions import (
    LeaseExpiredError,
    LeasePoolError,
    LeasePoolNotStartedError,
    LeaseUnavailableError,
    UnsupportedBackendError,
    WrongLoopError,
)

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "LeaseExpiredError",
    "LeasePoolError",
    "LeasePoolNotStartedError",
    "LeaseUnavailableError",
    "UnsupportedBackendError",
    "WrongLoopError",
    "__version__",
]
