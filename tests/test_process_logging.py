"""Forwarding log records from process workers to a parent logger."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from neoleasepool import LeasedExecutorManager, ProcessLoggingConfig
from neoleasepool.backends.process_logging import resolve_log_level
from tests.support import run, serving
from tests.workfns import log_message, remember, remembered


class Collector(logging.Handler):
    """Keeps every record it handles; wakes waiters for a given message."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self._changed:
            self.records.append(record)
            self._changed.notify_all()

    def wait_for(self, message: str, timeout: float = 20.0) -> logging.LogRecord:
        def find() -> logging.LogRecord | None:
            return next((r for r in self.records if r.getMessage() == message), None)

        with self._changed:
            if not self._changed.wait_for(lambda: find() is not None, timeout):
                got = [r.getMessage() for r in self.records]
                raise AssertionError(f"{message!r} not forwarded within {timeout}s: {got}")
            found = find()
            assert found is not None
            return found


@pytest.fixture
def target() -> Iterator[tuple[logging.Logger, Collector]]:
    logger = logging.getLogger("tests.process-workers")
    collector = Collector()
    logger.addHandler(collector)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, collector
    finally:
        logger.removeHandler(collector)
        logger.propagate = True


async def forwarded_pid(manager: LeasedExecutorManager, level: int, message: str) -> int:
    async with serving(manager), await manager.acquire() as lease:
        pid: int = await lease.run(log_message, "worker.module", level, message)
        return pid


def test_config_object_forwards_worker_records_to_the_target_logger(
    target: tuple[logging.Logger, Collector],
) -> None:
    logger, collector = target
    manager = LeasedExecutorManager(
        backend="process",
        max_pools=1,
        workers_per_pool=1,
        process_logging=ProcessLoggingConfig(
            enabled=True, level="INFO", target_logger=logger
        ),
    )
    assert manager.stats()["backend_details"] == {}
    pid = run(forwarded_pid(manager, logging.WARNING, "hello from a worker"))
    record = collector.wait_for("hello from a worker")
    assert record.process == pid
    assert record.levelno == logging.WARNING
    assert record.name == "worker.module"


def test_shortcut_arguments_forward_and_respect_the_level(
    target: tuple[logging.Logger, Collector],
) -> None:
    logger, collector = target

    async def main() -> None:
        manager = LeasedExecutorManager(
            backend="process",
            max_pools=1,
            workers_per_pool=1,
            forward_process_logs=True,
            process_log_level="WARNING",
            process_log_target_logger=logger,
        )
        async with serving(manager):
            assert manager.stats()["backend_details"]["forwarding_logs"] is True
            async with await manager.acquire() as lease:
                await lease.run(log_message, "w", logging.INFO, "too quiet")
                await lease.run(log_message, "w", logging.ERROR, "loud enough")

    run(main())
    collector.wait_for("loud enough")
    # Records from one worker arrive in order: the INFO one would be first.
    assert [r.getMessage() for r in collector.records] == ["loud enough"]


def test_forwarding_defaults_to_the_manager_logger(
    target: tuple[logging.Logger, Collector],
) -> None:
    logger, collector = target
    manager = LeasedExecutorManager(
        backend="process",
        max_pools=1,
        workers_per_pool=1,
        logger=logger,
        forward_process_logs=True,
    )
    run(forwarded_pid(manager, logging.INFO, "to the manager logger"))
    collector.wait_for("to the manager logger")


def test_forwarding_composes_with_a_user_initializer(
    target: tuple[logging.Logger, Collector],
) -> None:
    logger, collector = target

    async def main() -> object:
        manager = LeasedExecutorManager(
            backend="process",
            max_pools=1,
            workers_per_pool=1,
            forward_process_logs=True,
            process_log_target_logger=logger,
            initializer=remember,
            initargs=("from the user",),
        )
        async with serving(manager), await manager.acquire() as lease:
            await lease.run(log_message, "w", logging.INFO, "still forwarded")
            return await lease.run(remembered)

    assert run(main()) == "from the user"
    collector.wait_for("still forwarded")


def test_records_below_the_target_loggers_level_are_dropped(
    target: tuple[logging.Logger, Collector],
) -> None:
    logger, collector = target
    logger.setLevel(logging.ERROR)
    manager = LeasedExecutorManager(
        backend="process",
        max_pools=1,
        workers_per_pool=1,
        process_logging=ProcessLoggingConfig(
            enabled=True, level=logging.DEBUG, target_logger=logger
        ),
    )

    async def main() -> None:
        async with serving(manager), await manager.acquire() as lease:
            await lease.run(log_message, "w", logging.INFO, "filtered")
            await lease.run(log_message, "w", logging.CRITICAL, "kept")

    run(main())
    collector.wait_for("kept")
    assert [r.getMessage() for r in collector.records] == ["kept"]


# ---------------------------------------------------------- configuration


@pytest.mark.parametrize(
    "shortcut",
    [
        {"forward_process_logs": True},
        {"process_log_level": "DEBUG"},
        {"process_log_target_logger": logging.getLogger("x")},
        {"clear_process_log_handlers": False},
    ],
)
def test_config_and_shortcuts_together_are_rejected(shortcut: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="not both"):
        LeasedExecutorManager(
            backend="process",
            max_pools=1,
            process_logging=ProcessLoggingConfig(enabled=True),
            **shortcut,
        )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"forward_process_logs": True},
        {"process_logging": ProcessLoggingConfig(enabled=True)},
    ],
)
def test_forwarding_is_only_for_the_process_backend(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="backend='process'"):
        LeasedExecutorManager(backend="thread", max_pools=1, **kwargs)


def test_a_disabled_config_is_fine_on_any_backend() -> None:
    manager = LeasedExecutorManager(
        backend="thread", max_pools=1, process_logging=ProcessLoggingConfig()
    )
    assert manager.backend == "thread"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"enabled": "yes"},
        {"enabled": 1},
        {"level": "LOUD"},
        {"level": -1},
        {"level": True},
        {"level": 2.5},
        {"target_logger": "myapp"},
    ],
)
def test_invalid_process_logging_config_is_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"level|enabled|target_logger"):
        ProcessLoggingConfig(**kwargs)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("forward_process_logs", "yes"),
        ("forward_process_logs", 1),
        ("clear_process_log_handlers", None),
        ("process_log_level", "LOUD"),
        ("process_log_target_logger", "myapp"),
        ("process_logging", {"enabled": True}),
    ],
)
def test_invalid_process_logging_arguments_are_rejected(name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=name):
        LeasedExecutorManager(backend="process", max_pools=1, **{name: value})


def test_log_levels_resolve_by_name_or_number() -> None:
    assert resolve_log_level("info") == logging.INFO
    assert resolve_log_level("WARNING") == logging.WARNING
    assert resolve_log_level(15) == 15
