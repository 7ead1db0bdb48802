"""The status server: a small, read-only HTTP/1.1 server on the supervisor's loop.

Routes: ``/`` (the page, :mod:`.page`), ``/status.json`` (:mod:`.status`),
``/metrics`` (Prometheus text) and ``/healthz``; ``GET`` and ``HEAD`` only,
one request per connection (``Connection: close``). Standard library
streams (``asyncio.start_server``), no framework; parsing and the checks
on what clients send are in :mod:`.http`.

Threads, and who writes what:

* **The caller** of :meth:`StatusServer.start` and :meth:`StatusServer.close`
  (a plain thread; :meth:`SupervisorCore.stop` closes before the loops
  stop) blocks while the loop binds or unbinds, then joins the reading
  thread. It writes only ``_started`` and ``_closed`` (under ``_lock``).
* **The supervisor's loop thread** does everything else (accepting,
  answering, the :class:`~.history.Sampler` and its history, building
  ``status.json``) and is the only writer of every other attribute.
* **One reading thread** (an executor of one, shut down by close) takes
  the readings and renders ``/metrics``; a finished reading comes back to
  the loop through the executor's future (see :mod:`.history`).

Hostile clients: the request head is bounded (:data:`MAX_HEAD_BYTES`, else
431) and must arrive within :data:`HEAD_TIMEOUT_SECONDS` (else 408 and the
connection is closed); at most :data:`MAX_CONNECTIONS` connections are
served at once (more are answered 503); a malformed head gets 400, and no
answer ever carries a traceback. Off the loopback a token is required; on
it, the ``Host`` header must name the loopback (a DNS-rebinding guard).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hmac
import json
import logging
import threading
from collections import Counter
from typing import Protocol

from ..exceptions import LeasePoolNotStartedError
from ..loops.aloop import ALoop
from ..supervision.core import SupervisorCore
from .families import families
from .history import Sampler
from .http import (
    MAX_HEAD_BYTES,
    HttpError,
    Request,
    Response,
    check_token,
    close_writer,
    head_end,
    is_loopback,
    linger,
    parse_head,
    split_host,
    text_response,
)
from .page import PAGE, SCRIPT_SHA256
from .prometheus import CONTENT_TYPE, render
from .reading import Reading
from .status import build_status

__all__ = ["HEAD_TIMEOUT_SECONDS", "MAX_CONNECTIONS", "MAX_HEAD_BYTES", "StatusServer"]

logger = logging.getLogger("neoleasepool.observe")

#: Seconds a client has to send its whole request head.
HEAD_TIMEOUT_SECONDS = 5.0
#: Seconds a client has to take its answer.
WRITE_TIMEOUT_SECONDS = 10.0
#: Connections served at once; more are answered 503.
MAX_CONNECTIONS = 64
#: How old a reading may be to answer a request (readings are shared).
READING_MAX_AGE_SECONDS = 0.25
#: Longest wait for the loop to bind or to close the server.
LOOP_TIMEOUT_SECONDS = 15.0

_PAGE_POLICY = (
    f"default-src 'none'; script-src '{SCRIPT_SHA256}'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


class ReadingSource(Protocol):
    """What the server needs of its observer."""

    supervisor: SupervisorCore

    def reading(self) -> Reading:
        """Read the supervisor now (a plain thread)."""


class StatusServer:
    """Serves the status page from the supervisor's loop ``loop``.

    Args:
        observer: Takes the readings (:class:`~.observer.SupervisorObserver`).
        loop: The supervisor's own aloop.
        host: Address to bind; off the loopback ``token`` is required.
        port: TCP port, ``0`` for a free one.
        token: A shared secret every request must carry
            (``Authorization: Bearer ...`` or ``?token=...``).

    Raises:
        ValueError: If an argument is invalid (see :func:`check_token`).
    """

    def __init__(
        self, observer: ReadingSource, loop: ALoop, *, host: str, port: int, token: str | None
    ) -> None:
        if not isinstance(host, str) or not host or host != host.strip():
            raise ValueError(f"host must be an address or name (0.0.0.0 for all), got {host!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an integer from 0 to 65535, got {port!r}")
        self._token = check_token(host, token)
        self.observer = observer
        self.host = "127.0.0.1" if host.lower() == "localhost" else host
        self.port = port
        self.url = ""
        self.loopback = is_loopback(self.host)
        #: Answers by status, and ``refused`` connections (loop thread).
        self.counts: Counter[str] = Counter()
        self.head_timeout = HEAD_TIMEOUT_SECONDS
        self.write_timeout = WRITE_TIMEOUT_SECONDS
        self.max_connections = MAX_CONNECTIONS
        self._loop = loop
        self._lock = threading.Lock()
        self._closed = False
        self._started = False
        self._server: asyncio.Server | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix=f"supervisor_{observer.supervisor.id}_status"
        )  # (its thread starts with the first reading)
        self.sampler = Sampler(observer.reading, self._executor)
        self._clients: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._closing = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("serving" if self._started else "new")
        return f"<StatusServer {state} {self.url or self.host} clients={len(self._clients)}>"

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (or :meth:`start` failed)."""
        return self._closed

    # ------------------------------------------------------ start and close

    def start(self) -> None:
        """Bind and start serving (blocks until bound); sets :attr:`url`.

        Raises:
            RuntimeError: If started twice or closed.
            OSError: If the address cannot be bound.
        """
        with self._lock:
            if self._started or self._closed:
                raise RuntimeError("a StatusServer starts once; make a new one")
            self._started = True
        try:
            self.url = self._loop.call_with_timeout(LOOP_TIMEOUT_SECONDS, self._bind)
        except BaseException:
            self.close()
            raise
        logger.info("status page serving url=%s token=%s", self.url, self._token is not None)

    def close(self) -> None:
        """Stop serving: close the socket, end every connection and the
        sampling, join the reading thread. Idempotent; blocking (from the
        loop's own thread it only schedules the close)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        on_loop = self._loop.in_loop_thread()
        try:
            if on_loop:
                self._loop.submit(self._shutdown)
            elif self._started:
                self._loop.call_with_timeout(LOOP_TIMEOUT_SECONDS, self._shutdown)
        except LeasePoolNotStartedError:
            logger.warning("status server: the supervisor's loop stopped before it url=%s",
                           self.url)
        except TimeoutError:
            logger.warning("status server did not close in time url=%s", self.url)
        self._executor.shutdown(wait=not on_loop, cancel_futures=True)
        logger.info("status page closed url=%s", self.url)

    async def _bind(self) -> str:
        server = await asyncio.start_server(
            self._connected, self.host, self.port,
            limit=2 * MAX_HEAD_BYTES, reuse_address=True,
        )
        self._server = server
        self.port = server.sockets[0].getsockname()[1]
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.sampler.start()
        return f"http://{shown}:{self.port}/"

    async def _shutdown(self) -> None:
        self._closing = True
        server = self._server
        if server is not None:
            # Stop accepting first, and close the sockets only once the
            # connections just accepted are set up (a few loop turns): on
            # CPython 3.11 a connection whose transport is made after
            # Server.close() is dropped without its socket being closed.
            loop = asyncio.get_running_loop()
            for sock in server.sockets:
                # (a proactor loop, on Windows, has no readers to remove)
                with contextlib.suppress(NotImplementedError):
                    loop.remove_reader(sock.fileno())
            for _ in range(3):  # loop turns, not a wait for time to pass
                await asyncio.sleep(0)
            server.close()
        clients = dict(self._clients)
        for task in clients:
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
        for writer in clients.values():
            writer.transport.abort()  # (a task cancelled before it ran closed nothing)
        await self.sampler.stop()
        if self._server is not None:
            await self._server.wait_closed()

    # ------------------------------------------------------------ requests

    def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Called by the stream protocol's connection_made, so each connection
        # is registered (and can be ended by close) from its first moment.
        refuse = self._closing or len(self._clients) >= self.max_connections
        task = asyncio.get_running_loop().create_task(self._serve_client(reader, writer, refuse))
        self._clients[task] = writer
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._clients.pop(task, None)

    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, refuse: bool
    ) -> None:
        try:
            if refuse or self._closing:
                self.counts["refused"] += 1
                why = "the server is stopping" if self._closing else "too many connections"
                await self._send(writer, text_response(503, why), False)
                return
            await self._exchange(reader, writer)
        except (ConnectionError, OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            pass  # the client went away or would not take the answer
        finally:
            await close_writer(writer)

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head_only = False
        try:
            try:
                head = await asyncio.wait_for(self._read_head(reader), self.head_timeout)
            except asyncio.TimeoutError:
                raise HttpError(408, "request head not received in time") from None
            if head is None:
                return  # closed before sending anything
            request = parse_head(head)
            head_only = request.method == "HEAD"
            response = await self._answer(request)
        except HttpError as error:
            response = text_response(error.status, str(error), error.headers)
        except OSError:  # the client reset the connection: nobody to answer
            raise
        except Exception:
            logger.exception("status page: answering a request failed")
            response = text_response(500, "internal error (logged by the server)")
        self.counts[str(response.status)] += 1
        await self._send(writer, response, head_only)
        if response.status >= 400:
            await linger(reader, writer)

    async def _read_head(self, reader: asyncio.StreamReader) -> bytes | None:
        data = bytearray()
        while (end := head_end(data)) < 0:
            if len(data) > MAX_HEAD_BYTES:
                raise HttpError(431, f"request head longer than {MAX_HEAD_BYTES} bytes")
            chunk = await reader.read(MAX_HEAD_BYTES + 4 - len(data))
            if not chunk:
                if data:
                    raise HttpError(400, "incomplete request head")
                return None
            data += chunk
        if end > MAX_HEAD_BYTES:
            raise HttpError(431, f"request head longer than {MAX_HEAD_BYTES} bytes")
        return bytes(data[:end])

    async def _send(
        self, writer: asyncio.StreamWriter, response: Response, head_only: bool
    ) -> None:
        writer.write(response.encode(head_only))
        await asyncio.wait_for(writer.drain(), self.write_timeout)

    async def _answer(self, request: Request) -> Response:
        self._check_host(request)
        if not self._authorized(request):
            raise HttpError(401, "a valid token is required", (("WWW-Authenticate", "Bearer"),))
        if request.method not in ("GET", "HEAD"):
            raise HttpError(405, "only GET and HEAD", (("Allow", "GET, HEAD"),))
        path = request.path
        if path == "/":
            return Response(200, PAGE.encode(), "text/html; charset=utf-8",
                            (("Content-Security-Policy", _PAGE_POLICY),))
        if path == "/status.json":
            reading = await self.sampler.reading(READING_MAX_AGE_SECONDS)
            status = build_status(reading, self.sampler.history)
            body = json.dumps(status, allow_nan=False, separators=(",", ":")).encode()
            return Response(200, body, "application/json")
        if path == "/metrics":
            reading = await self.sampler.reading(READING_MAX_AGE_SECONDS)
            loop = asyncio.get_running_loop()
            text = await loop.run_in_executor(self._executor, _metrics_text, reading)
            return Response(200, text.encode(), CONTENT_TYPE)
        if path == "/healthz":
            if self.observer.supervisor.active:
                return text_response(200, "ok")
            return text_response(503, "stopping")
        raise HttpError(404, "not found: try /, /status.json, /metrics or /healthz")

    def _check_host(self, request: Request) -> None:
        if not self.loopback:
            return
        value = request.headers.get("host")
        if value is None:
            raise HttpError(400, "a Host header is required")
        name, port = split_host(value.lower())
        allowed = {"localhost", self.host.lower(), f"[{self.host.lower()}]"}
        if name not in allowed or (port is not None and port != str(self.port)):
            raise HttpError(421, "this server answers only to the loopback address it is bound to")

    def _authorized(self, request: Request) -> bool:
        if self._token is None:
            return True
        expected = self._token.encode()
        offered = list(request.query.get("token", []))
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            offered.append(credentials.strip())
        granted = False
        for candidate in offered:
            granted |= hmac.compare_digest(candidate.encode("utf-8", "replace"), expected)
        return granted


def _metrics_text(reading: Reading) -> str:
    return render(families(reading))
