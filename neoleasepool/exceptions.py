"""Exceptions raised by neoleasepool.

Every library error subclasses :class:`LeasePoolError`.  Where an error stands
in for a builtin it subclasses that builtin too, so code that catches the
builtin keeps working: a call on the wrong loop is a :class:`RuntimeError`, an
unknown backend name a :class:`ValueError`.
"""

from __future__ import annotations

from concurrent.futures.process import BrokenProcessPool

__all__ = [
    "ItemTimeoutError",
    "LeaseExpiredError",
    "LeasePoolError",
    "LeasePoolNotStartedError",
    "LeaseUnavailableError",
    "SoftTimeLimitExceeded",
    "UnsupportedBackendError",
    "WorkerDiedError",
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


class ItemTimeoutError(LeasePoolError, TimeoutError):
    """An item ran past its time limit; its future failed when the limit passed.

    On a process worker the worker running it was stopped and replaced; on
    a thread, which cannot be killed, the function may still be running (it
    can see ``current_item().cancelled``).

    Attributes:
        function: The name of the function that overstayed.
        limit: The time limit, in seconds.
        elapsed: Seconds the item had run when the limit passed.
    """

    def __init__(self, function: str, limit: float, elapsed: float, how: str = "") -> None:
        self.function = function
        self.limit = limit
        self.elapsed = elapsed
        self.how = how
        detail = f"; {how}" if how else ""
        super().__init__(
            f"{function}() ran past its time limit of {limit:g} s "
            f"(it had run {elapsed:.3f} s{detail})"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.function, self.limit, self.elapsed, self.how))


class SoftTimeLimitExceeded(ItemTimeoutError):
    """Raised *inside* a function when its soft time limit passes.

    On a process worker it interrupts the running Python code (as Celery's
    exception of the same name does); the function may catch it to clean
    up before the hard limit stops its worker. On threads it is raised by
    ``current_item().check()``.
    """


class WorkerDiedError(LeasePoolError, BrokenProcessPool):
    """The worker process running this call died (crashed, was killed, or
    ran out of memory); only its own call fails, and the worker is replaced.

    A :class:`concurrent.futures.process.BrokenProcessPool`, so code written
    for ``ProcessPoolExecutor`` that catches that still catches this; but
    the pool itself is not broken and goes on serving.
    """
