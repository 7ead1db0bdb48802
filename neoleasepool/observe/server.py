"""Placeholder until the status server lands (replaced in the next commit)."""

from __future__ import annotations

from typing import Any

__all__ = ["StatusServer"]


class StatusServer:
    """Serves the status page from the supervisor's loop."""

    url = ""
    closed = True

    def __init__(
        self, observer: Any, loop: Any, *, host: str, port: int, token: str | None
    ) -> None:
        raise NotImplementedError("the status server is not written yet")

    def start(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError
