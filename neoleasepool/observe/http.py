"""The HTTP side of the status server: parsing a request head, writing an
answer, and the checks that keep hostile clients out.

Nothing here touches the supervisor; :mod:`.server` serves with it. Only
``GET``/``HEAD`` with one request per connection is needed, so this is a
small, strict subset of HTTP/1.1: a malformed or oversized head is an
:class:`HttpError` (400 or 431), never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import ipaddress
import re
import urllib.parse
from dataclasses import dataclass, field

__all__ = [
    "MAX_HEADER_LINES",
    "MAX_HEAD_BYTES",
    "MIN_TOKEN_CHARS",
    "HttpError",
    "Request",
    "Response",
    "check_token",
    "close_writer",
    "head_end",
    "is_loopback",
    "linger",
    "parse_head",
    "split_host",
    "text_response",
]

#: The longest request head (request line and headers) accepted, in bytes.
MAX_HEAD_BYTES = 8192
#: Most header lines in a request.
MAX_HEADER_LINES = 100
#: The shortest token accepted.
MIN_TOKEN_CHARS = 16
#: After an error answer, how long what the client still sends is read and
#: dropped, so that closing does not reset the connection before the client
#: has read the answer.
LINGER_SECONDS = 2.0

_TCHAR = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_TOKEN_TEXT = re.compile(r"^[\x21-\x7e]+$")

class HttpError(Exception):
    """A request answered with an error status (never with a traceback)."""

    def __init__(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()):
        super().__init__(message)
        self.status = status
        self.headers = headers


@dataclass(frozen=True)
class Request:
    """A parsed request head (header names lowercased)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Response:
    """An answer, written with ``Connection: close``."""

    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()

    def encode(self, head_only: bool) -> bytes:
        """The bytes on the wire (no body for ``HEAD``)."""
        lines = [
            f"HTTP/1.1 {self.status} {http.HTTPStatus(self.status).phrase}",
            f"Content-Type: {self.content_type}",
            f"Content-Length: {len(self.body)}",
            "Connection: close",
            "Cache-Control: no-store",
            "X-Content-Type-Options: nosniff",
            "X-Frame-Options: DENY",
            "Referrer-Policy: no-referrer",
            *(f"{name}: {value}" for name, value in self.headers),
        ]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head if head_only else head + self.body


def text_response(status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return Response(status, (message + "\n").encode(), headers=headers)


def head_end(data: bytes | bytearray) -> int:
    """Where the request head in ``data`` ends (before its blank line), or -1."""
    ends = [i for i in (data.find(b"\r\n\r\n"), data.find(b"\n\n")) if i >= 0]
    return min(ends) if ends else -1


def parse_head(head: bytes) -> Request:
    """Parse a request head (without its blank line).

    Raises:
        HttpError: 400 if it is malformed, 431 if it has too many headers.
    """
    text = head.decode("latin-1").replace("\r\n", "\n")
    lines = text.split("\n")
    if len(lines) > MAX_HEADER_LINES + 1:
        raise HttpError(431, "too many header lines")
    if any(_CONTROL.search(line) for line in lines):
        raise HttpError(400, "control characters in the request head")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not _TCHAR.match(parts[0]) or not parts[1].startswith("/"):
        raise HttpError(400, "malformed request line")
    method, target, version = parts
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise HttpError(400, "unsupported HTTP version")
    if not target.isascii():
        raise HttpError(400, "malformed request target")
    try:
        url = urllib.parse.urlsplit(target)
    except ValueError:  # e.g. "//[::1/x"
        raise HttpError(400, "malformed request target") from None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not _TCHAR.match(name):
            raise HttpError(400, "malformed header line")
        name = name.lower()
        if name in headers and name in ("host", "authorization"):
            raise HttpError(400, f"more than one {name} header")
        headers[name] = value.strip(" \t")
    try:
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True, max_num_fields=64)
    except ValueError:  # more than 64 fields
        raise HttpError(400, "malformed or oversized query string") from None
    return Request(method, url.path, query, headers)


def is_loopback(host: str) -> bool:
    """Whether ``host`` names the loopback (``localhost`` or a loopback IP)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_token(host: str, token: object) -> str | None:
    """Check ``serve_status``'s ``host`` and ``token``; the token.

    Raises:
        ValueError: If a token is needed (not loopback) and missing, or is
            shorter than :data:`MIN_TOKEN_CHARS` or not printable ASCII.
    """
    if token is None:
        if not is_loopback(host):
            raise ValueError(
                f"serving the status page on {host!r} (not the loopback) needs a token: "
                f"serve_status(host={host!r}, token=...) with a secret of at least "
                f"{MIN_TOKEN_CHARS} characters, e.g. secrets.token_urlsafe(24)"
            )
        return None
    if not isinstance(token, str) or len(token) < MIN_TOKEN_CHARS or not _TOKEN_TEXT.match(token):
        raise ValueError(
            f"token must be a string of at least {MIN_TOKEN_CHARS} printable ASCII "
            f"characters without spaces, e.g. secrets.token_urlsafe(24)"
        )
    return token


def split_host(value: str) -> tuple[str, str | None]:
    """``host[:port]`` (``[v6]:port`` too) as ``(host, port or None)``."""
    if value.startswith("["):
        name, _, rest = value.partition("]")
        return name + "]", rest[1:] if rest.startswith(":") else None
    name, sep, port = value.rpartition(":")
    return (name, port) if sep else (value, None)


async def linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Half-close, then drop what the client still sends (for a while)."""
    if not writer.can_write_eof():
        return
    writer.write_eof()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LINGER_SECONDS
    with contextlib.suppress(asyncio.TimeoutError, OSError):
        while await asyncio.wait_for(reader.read(65536), max(0.0, deadline - loop.time())):
            pass


async def close_writer(writer: asyncio.StreamWriter) -> None:
    """Close a connection; abort it if it does not close in a second."""
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), 1.0)
    except (asyncio.TimeoutError, OSError):
        writer.transport.abort()
    except asyncio.CancelledError:
        writer.transport.abort()
        raise
