"""Exceptions raised by neoleasepool.

Every library error subclasses :class:`LeasePoolError`.  Where an error stands
in for a builtin it subclasses that builtin too, so code that catches the
builtin keeps working: a call on the wrong loop is a :class:`RuntimeError`, an
unknown backend name a :class:`ValueError`.
"""

from __future__ import annotations

__all__ = [
    "LeaseExpiredError",
    "LeasePoolError",
    "LeasePoolNotStartedError",
    "LeaseUnavailableError",
    "UnsupportedBackendError",
    "WrongLoopError",
]


class LeasePoolError(Exception):
    """Base class of every error raised by neoleasepool."""


class LeasePoolNotStartedError(LeasePoolError, RuntimeError):
    """The manager (or grinder) is not started, or is stopping or stopped."""


class LeaseUnavailableError(LeasePoolError):
    """No executor could be leased and the caller asked not to wait."""


class LeaseExpiredError(LeasePoolError):
    """The lease was released, or revoked after its hard expiry."""


class UnsupportedBackendError(LeasePoolError, ValueError):
    """The backend is unknown, or cannot run on this Python or install."""


class WrongLoopError(LeasePoolError, RuntimeError):
    """An API was called from a loop or thread it does not belong to.

    The message names the API to use instead.
    """
