"""Forwarding log records from process-pool workers to the parent.

Worker processes have their own logging configuration.  When forwarding is
enabled, each worker's root logger gets a single
:class:`logging.handlers.QueueHandler` writing into a multiprocessing queue,
and a :class:`logging.handlers.QueueListener` thread in the parent re-emits
every record through a parent logger, so the application's own handlers,
formatters and levels apply.

The listener is a thread, and forking a process that has threads is unsafe,
so forwarding always uses a non-``fork`` start method (``forkserver`` where
available, else ``spawn``) unless the caller passes ``mp_context`` itself.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.context
from collections.abc import Callable
from dataclasses import dataclass
from logging.handlers import QueueHandler, QueueListener
from typing import Any

__all__ = [
    "ProcessLogForwarder",
    "ProcessLoggingConfig",
    "resolve_log_level",
    "safe_mp_context",
]


@dataclass(frozen=True)
class ProcessLoggingConfig:
    """How worker processes forward their log records to the parent.

    Attributes:
        enabled: Whether to forward worker log records at all.
        level: Level of the worker's root logger (``int`` or a name such as
            ``"INFO"``); records below it are dropped in the worker.
        target_logger: Parent logger that re-emits the records; defaults to
            the manager's logger.
        clear_child_handlers: Remove the worker root logger's existing
            handlers first, so records inherited through ``fork`` setups are
            not written twice.
    """

    enabled: bool = False
    level: int | str = logging.INFO
    target_logger: logging.Logger | None = None
    clear_child_handlers: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ValueError(
                f"ProcessLoggingConfig.enabled must be a bool, got {self.enabled!r}"
            )
        resolve_log_level(self.level, "ProcessLoggingConfig.level")
        if self.target_logger is not None and not isinstance(
            self.target_logger, logging.Logger
        ):
            raise ValueError(
                "ProcessLoggingConfig.target_logger must be a logging.Logger or "
                f"None, got {self.target_logger!r}"
            )


def resolve_log_level(level: int | str, name: str = "log level") -> int:
    """Return the numeric logging level for an ``int`` or a level name.

    Args:
        level: An ``int`` >= 0 or a level name such as ``"INFO"``.
        name: The argument's name, for the error message.

    Raises:
        ValueError: If the name is unknown or the value is not a level.
    """
    if isinstance(level, bool):
        raise ValueError(f"Invalid logging level: {level!r} ({name}: an int or a level name)")
    if isinstance(level, int):
        if level < 0:
            raise ValueError(f"Invalid logging level: {level!r} ({name} must be >= 0)")
        return level
    if isinstance(level, str):
        resolved = logging.getLevelName(level.upper())
        if isinstance(resolved, int):
            return resolved
    raise ValueError(
        f"Invalid logging level: {level!r} ({name}: an int or a level name such as 'INFO')"
    )


def safe_mp_context() -> multiprocessing.context.BaseContext:
    """A start method that does not fork a threaded parent.

    ``forkserver`` where the platform has it (the default from Python 3.14
    on Linux), else ``spawn``.
    """
    methods = multiprocessing.get_all_start_methods()
    for method in ("forkserver", "spawn"):
        if method in methods:
            return multiprocessing.get_context(method)
    return multiprocessing.get_context()


class _ReemitHandler(logging.Handler):
    """Listener-side handler that hands each record to a parent logger."""

    def __init__(self, target: logging.Logger) -> None:
        super().__init__()
        self._target = target

    def emit(self, record: logging.LogRecord) -> None:
        if self._target.isEnabledFor(record.levelno):
            self._target.handle(record)


def worker_initializer(
    log_queue: Any,
    level: int,
    clear_handlers: bool,
    user_initializer: Callable[..., object] | None,
    user_initargs: tuple[Any, ...],
) -> None:
    """Runs first in every worker: route logging to the queue, then the user's.

    Args:
        log_queue: Multiprocessing queue the records go into.
        level: Root logger level in the worker.
        clear_handlers: Remove existing root handlers first.
        user_initializer: The ``initializer`` the user gave, if any.
        user_initargs: Its ``initargs``.
    """
    root = logging.getLogger()
    if clear_handlers:
        for handler in list(root.handlers):
            root.removeHandler(handler)
    root.addHandler(QueueHandler(log_queue))
    root.setLevel(level)
    if user_initializer is not None:
        user_initializer(*user_initargs)


class ProcessLogForwarder:
    """The parent half of log forwarding: a queue and its listener thread.

    Args:
        config: The forwarding configuration (``enabled`` must be true).
        fallback_logger: Target when ``config.target_logger`` is ``None``.
        mp_context: Context for the queue; must match the pools' context.
    """

    def __init__(
        self,
        config: ProcessLoggingConfig,
        fallback_logger: logging.Logger,
        mp_context: multiprocessing.context.BaseContext,
    ) -> None:
        self._level = resolve_log_level(config.level)
        self._clear = config.clear_child_handlers
        self._target = config.target_logger or fallback_logger
        self._queue: Any = mp_context.Queue(-1)
        self._listener = QueueListener(
            self._queue, _ReemitHandler(self._target), respect_handler_level=True
        )
        self._listener.start()

    def __repr__(self) -> str:
        return f"<ProcessLogForwarder target={self._target.name!r} level={self._level}>"

    def wrap_initializer(self, options: dict[str, Any]) -> dict[str, Any]:
        """Return executor options whose initializer forwards logs first.

        A user ``initializer``/``initargs`` in ``options`` still runs, after
        logging is set up.
        """
        wrapped = dict(options)
        user_initializer = wrapped.pop("initializer", None)
        user_initargs = tuple(wrapped.pop("initargs", ()))
        wrapped["initializer"] = worker_initializer
        wrapped["initargs"] = (
            self._queue,
            self._level,
            self._clear,
            user_initializer,
            user_initargs,
        )
        return wrapped

    def close(self) -> None:
        """Stop the listener (flushing queued records) and close the queue."""
        self._listener.stop()
        self._queue.close()
        self._queue.join_thread()
