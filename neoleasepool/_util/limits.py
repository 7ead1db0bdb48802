"""Time limits attached to a callable: :func:`time_limited`.

A limit travels *with the function*, so no keyword argument of the user's
own function is taken for it: ``grinder.submit(time_limited(fetch, 5), url)``
runs ``fetch(url)`` with a five-second limit, and every way in (``submit``,
``enqueue``, ``submit_from_thread``, ``map``, the blocking facades,
``lease.executor.submit`` on the process backend) reads it the same way.
Called directly, a :class:`TimeLimited` just calls its function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .validation import check_duration

__all__ = ["Limits", "TimeLimited", "function_name", "split_limits", "time_limited"]

T = TypeVar("T")

#: ``(timeout, soft_timeout)``, either of them ``None``.
Limits = tuple["float | None", "float | None"]


class TimeLimited(Generic[T]):
    """A function with time limits (see :func:`time_limited`); picklable
    when its function is."""

    __slots__ = ("fn", "soft_timeout", "timeout")

    def __init__(
        self, fn: Callable[..., T], timeout: float | None, soft_timeout: float | None
    ) -> None:
        self.fn = fn
        self.timeout = timeout
        self.soft_timeout = soft_timeout

    def __call__(self, *args: Any, **kwargs: Any) -> T:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return (
            f"<TimeLimited {function_name(self.fn)} timeout={self.timeout} "
            f"soft_timeout={self.soft_timeout}>"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (TimeLimited, (self.fn, self.timeout, self.soft_timeout))


def time_limited(
    fn: Callable[..., T], timeout: float | None = None, *, soft_timeout: float | None = None
) -> TimeLimited[T]:
    """``fn`` with time limits, counted from when its call starts running.

    Args:
        fn: The function.
        timeout: Hard limit in seconds: the item's future fails with
            :class:`~neoleasepool.ItemTimeoutError` when it passes; on the
            process backend the worker running it is stopped.
        soft_timeout: Soft limit in seconds, below ``timeout``: on a
            process worker :class:`~neoleasepool.SoftTimeLimitExceeded` is
            raised inside the function; on threads
            ``current_item().cancelled`` turns true.

    Raises:
        ValueError: If neither limit is given, one is not a finite number
            > 0, or ``soft_timeout`` is not below ``timeout``.
        TypeError: If ``fn`` is not callable.
    """
    if not callable(fn):
        raise TypeError(f"time_limited() needs a callable, got {fn!r}")
    if timeout is None and soft_timeout is None:
        raise ValueError("time_limited() needs a timeout, a soft_timeout, or both")
    hard = None if timeout is None else check_duration("timeout", timeout)
    soft = None if soft_timeout is None else check_duration("soft_timeout", soft_timeout)
    if hard is not None and soft is not None and soft >= hard:
        raise ValueError(
            f"soft_timeout must be below timeout: got soft_timeout={soft_timeout!r}, "
            f"timeout={timeout!r} (the soft limit warns the function before the hard one)"
        )
    if isinstance(fn, TimeLimited):
        fn = fn.fn  # the new limits replace the old ones
    return TimeLimited(fn, hard, soft)


def split_limits(
    fn: Callable[..., Any], default: float | None = None
) -> tuple[Callable[..., Any], Limits | None]:
    """``fn`` without its :class:`TimeLimited` wrapper, and its limits.

    ``default`` (a grinder's ``item_timeout``) is the hard limit of a plain
    function; ``None`` limits mean there are none.
    """
    if type(fn) is TimeLimited:
        return fn.fn, (fn.timeout, fn.soft_timeout)
    if default is None:
        return fn, None
    return fn, (default, None)


def function_name(fn: object) -> str:
    """A short name for ``fn`` in messages (never its arguments)."""
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if isinstance(name, str):
        return name
    return type(fn).__name__
