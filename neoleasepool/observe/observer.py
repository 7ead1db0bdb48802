"""A supervisor's observer: its metrics text and its status server.

The supervisor makes one through the slot in
:mod:`neoleasepool.supervision.observer` the first time it is asked for
metrics or a status page, and closes it when it stops.
"""

from __future__ import annotations

import asyncio
import threading

from ..exceptions import LeasePoolNotStartedError, WrongLoopError
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
        self._lock = threading.RLock()
        self._server: StatusServer | None = None
        self._token: str | None = None
        self._closes = 0  # close() calls: a start that sees this change lost a race

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
        """Start the status server once; its URL.

        Asked again while it serves, with the same address and token (or
        ``port=0``), gives the same URL.

        Raises:
            LeasePoolNotStartedError: If the supervisor is not running, or
                stopped while the server was starting (the server is then
                closed again: nothing is left on a stopping supervisor).
            ValueError: If it already serves on another address or with
                another token.
        """
        with self._lock:  # (an RLock: a stop from a signal handler may come in)
            server = self._server
            if server is not None and not server.closed:
                self._check_same(server, port, host, token)
                return server.url
            loop = self.supervisor.aloop
            if loop is None or not self.supervisor.active:
                raise LeasePoolNotStartedError(
                    "serve_status() needs a running supervisor (call start() first)"
                )
            closes = self._closes
            server = StatusServer(self, loop, host=host, port=port, token=token)
            server.start()
            if self._closes != closes or not self.supervisor.active:
                server.close()  # the supervisor stopped meanwhile
                raise LeasePoolNotStartedError(
                    "the supervisor stopped while its status page was starting"
                )
            self._server, self._token = server, token
            return server.url

    def _check_same(self, server: StatusServer, port: int, host: str, token: str | None) -> None:
        wanted = "127.0.0.1" if host.lower() == "localhost" else host
        if wanted != server.host or (port and port != server.port) or token != self._token:
            raise ValueError(
                f"the status page already serves at {server.url} (host {server.host!r}, "
                f"port {server.port}, {'a' if self._token else 'no'} token); it serves "
                "once per run of the supervisor"
            )

    def close(self) -> None:
        """Stop the status server, if one runs (the supervisor stops); a
        server still starting is closed by its own ``serve_status``."""
        with self._lock:
            self._closes += 1
            server, self._server = self._server, None
        if server is not None:
            server.close()
