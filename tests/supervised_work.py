"""Work functions for the supervised-facade tests (``tests/test_supervised*.py``).

The process backend starts its workers with ``forkserver``, so everything a
worker runs must be importable by name; it lives here at module level.
Workers signal and wait through files, since a ``threading.Event`` does not
cross a process boundary; the same file gates serve the thread backend.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.workfns import gated

__all__ = ["FileGate", "fail_with", "gated", "getpid", "square", "touch_then"]


def square(value: int) -> int:
    """Return ``value * value``."""
    return value * value


def getpid() -> int:
    """Return the process id of the worker running the call."""
    return os.getpid()


def fail_with(message: str) -> None:
    """Raise ``KeyError(message)``."""
    raise KeyError(message)


def touch_then(path: str, value: object) -> object:
    """Create ``path`` (proof that the call ran), then return ``value``."""
    Path(path).touch()
    return value


class FileGate:
    """A pair of files gating :func:`gated` calls, on either backend."""

    def __init__(self, directory: Path, name: str = "gate") -> None:
        self.started = str(directory / f"{name}.started")
        self.release = str(directory / f"{name}.release")

    def args(self, value: object) -> tuple[str, str, object]:
        """The arguments of a :func:`gated` call through this gate."""
        return self.started, self.release, value

    def has_started(self) -> bool:
        return os.path.exists(self.started)

    def open(self) -> None:
        Path(self.release).touch()
