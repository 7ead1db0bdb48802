"""A supervisor's observer: its metrics text and its status server.

The supervisor makes one through the slot in
:mod:`neoleasepool.supervision.observer` the first time it is asked for
metrics or a status page, and closes it when it stops.
"""

from __future__ import annotations

import asyncio
import threading

from ..exceptions import WrongLoopError
from ..supervision.core import SupervisorCore
from .families import families
from .prometheus import render
from .reading import Reading, read
from .server import StatusServer

__all__ = ["SupervisorObserver"]


class SupervisorObserver:
    """Reads ``supervisor`` for metrics and serves its status page."""

    def __init__(self, supervisor: SupervisorCore) -> None:
        self.supervisor = supervisor
        self._lock = threading.Lock()
        self._server: StatusServer | None = None

    def __repr__(self) -> str:
        url = self._server.url if self._server else None
        return f"<SupervisorObserver {self.supervisor.id!r} serving={url}>"

    def reading(self) -> Reading:
        """Read the supervisor and its parts now (a plain thread: grinders
        are read on their own loops)."""
        return read(self.supervisor)

    def metrics_text(self) -> str:
        """The metrics in Prometheus' text format.

        Raises:
            WrongLoopError: If called on an event loop's thread.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return render(families(self.reading()))
        raise WrongLoopError(
            "metrics_text() waits for each grinder's loop and cannot run on an event "
            "loop's thread; use await asyncio.to_thread(task_supervisor.metrics_text)"
        )

    def serve_status(self, port: int, host: str, token: str | None) -> str:
        """Start the status server once; its URL."""
        with self._lock:
            if self._server is None or self._server.closed:
                loop = self.supervisor.aloop
                if loop is None:
                    raise RuntimeError("the supervisor's loop is not running")
                server = StatusServer(self, loop, host=host, port=port, token=token)
                server.start()
                self._server = server
            return self._server.url

    def close(self) -> None:
        """Stop the status server, if one runs."""
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.close()
