"""The status server against hostile or broken clients (issue 17, point 5).

Malformed request lines, oversized heads, clients that stall or flood,
binary garbage, wrong tokens and abrupt disconnects. After each, the
server answers a normal request, nothing it answered carries a
traceback, nothing was logged as an error of ours, and the supervisor's
grinder still does its work.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from neoleasepool.observe import server as server_module

from .support import wait_until
from .test_status_page import (
    TOKEN,
    Served,
    get,
    port_of,
    raw,
    read_all,
    serve_a_supervisor,
    status_of,
)

#: Shorter than the real 5 s, so the stalling tests stay quick.
HEAD_TIMEOUT = 1.0


@pytest.fixture
def served(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> Iterator[Served]:
    monkeypatch.setattr(server_module, "HEAD_TIMEOUT_SECONDS", HEAD_TIMEOUT)
    caplog.set_level(logging.WARNING, logger="neoleasepool")
    yield from serve_a_supervisor(request.node.name)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


def assert_still_serving(served: Served) -> None:
    """A normal request is answered and the grinder still works."""
    assert get(served.url, "/healthz").status == 200
    assert get(served.url, "/status.json").json()["supervisor"]["active"] is True
    assert served.grinder.submit(pow, 2, 10, timeout=30) == 1024


def answers_ok(url: str) -> bool:
    return get(url, "/healthz").status == 200


def connect(served: Served) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port_of(served.url)), timeout=15)


@pytest.mark.parametrize(
    "head",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET  /  HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET http://127.0.0.1/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"G\x00T / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET /\xff\xfe HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nNo colon here\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Name: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX: a\x01b\r\n\r\n",
        b"\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n",  # then EOF: incomplete
        # Targets the URL parser refuses, before any token is looked at.
        b"GET //[::1/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET /?" + b"&".join(b"k%d=v" % i for i in range(100))
        + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    ],
)
def test_a_malformed_request_gets_400_without_a_traceback(served: Served, head: bytes) -> None:
    answer = raw(served.url, head)
    assert status_of(answer) == 400
    assert b"Traceback" not in answer and b"File \"" not in answer
    assert b"Connection: close" in answer
    assert_still_serving(served)


def test_a_head_over_8_kib_gets_431(served: Served) -> None:
    huge = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n"
    with connect(served) as sock:
        try:
            sock.sendall(huge)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before taking it all
        answer = read_all(sock)
    assert status_of(answer) == 431
    many = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X: y\r\n" * 150 + b"\r\n"
    assert status_of(raw(served.url, many)) == 431
    assert_still_serving(served)


def test_a_client_that_stalls_is_cut_off_while_others_are_served(served: Served) -> None:
    with connect(served) as slow:
        started = time.monotonic()
        slow.sendall(b"GET /status.json HTTP/1.1\r\nHo")
        # While it stalls, others are answered and work goes on.
        assert_still_serving(served)
        answer = read_all(slow)
        waited = time.monotonic() - started
    assert status_of(answer) == 408
    assert HEAD_TIMEOUT * 0.8 <= waited < HEAD_TIMEOUT + 10
    assert_still_serving(served)


def test_a_trickling_client_cannot_extend_its_time(served: Served) -> None:
    """One byte at a time, each before the timeout: the whole head still
    has only HEAD_TIMEOUT seconds."""
    with connect(served) as slow:
        started = time.monotonic()
        stop = threading.Event()

        def trickle() -> None:
            for byte in b"GET / HTTP/1.1\r\nX-Slow: " + b"z" * 1000:
                if stop.wait(0.05):
                    return
                try:
                    slow.send(bytes([byte]))
                except OSError:
                    return

        sender = threading.Thread(target=trickle, name="trickle")
        sender.start()
        try:
            answer = read_all(slow)
        finally:
            stop.set()
            sender.join()
        waited = time.monotonic() - started
    assert status_of(answer) == 408
    assert waited < HEAD_TIMEOUT + 10
    assert_still_serving(served)


def test_connections_beyond_the_cap_are_refused_and_work_goes_on(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Idle connections are held for longer than the test needs.
    monkeypatch.setattr(server_module, "HEAD_TIMEOUT_SECONDS", 60.0)
    cap = server_module.MAX_CONNECTIONS
    for served in serve_a_supervisor(request.node.name):
        held = [connect(served) for _ in range(cap)]
        try:
            answers = []
            for _ in range(20):
                with connect(served) as sock:
                    answers.append(read_all(sock))
            # Connections are accepted in order: the held ones took every slot.
            assert all(status_of(a) == 503 for a in answers), answers
            assert all(b"too many connections" in a for a in answers)
            assert served.grinder.submit(pow, 3, 3, timeout=30) == 27
        finally:
            for sock in held:
                sock.close()
        wait_until(functools.partial(answers_ok, served.url), timeout=15)
        assert_still_serving(served)


def test_a_wrong_token_is_refused_every_time(request: pytest.FixtureRequest) -> None:
    for served in serve_a_supervisor(request.node.name, token=TOKEN):
        for attempt in range(50):
            wrong = TOKEN[: attempt % len(TOKEN)] + "#" * (attempt // len(TOKEN) + 1)
            bearer = {"Authorization": f"Bearer {wrong}"}
            assert get(served.url, "/status.json", headers=bearer).status == 401
        weird = {"Authorization": "Bearer \u00e9\u00e9\u00e9".encode().decode("latin-1")}
        assert get(served.url, "/status.json", headers=weird).status == 401
        assert get(served.url, "/status.json?token=%FF%FE").status == 401
        assert get(served.url, "/healthz", headers={"Authorization": f"Bearer {TOKEN}"}
                   ).status == 200
        assert served.grinder.submit(pow, 2, 2, timeout=30) == 4


@pytest.mark.parametrize("size", [64, 4096, 20_000])
def test_binary_garbage_is_refused(served: Served, size: int) -> None:
    garbage = os.urandom(size)
    with connect(served) as sock:
        try:
            sock.sendall(garbage)
            sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = read_all(sock)
    if answer:  # it may also just be cut off
        assert status_of(answer) in (400, 431)
        assert b"Traceback" not in answer
    assert_still_serving(served)


def test_abrupt_disconnects_are_shrugged_off(served: Served) -> None:
    reset = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a reset
    for partial in (b"", b"GET /sta", b"GET /status.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"):
        with connect(served) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, reset)
            if partial:
                sock.sendall(partial)
    # A client that asks for the page and leaves before reading it.
    for _ in range(5):
        with connect(served) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert_still_serving(served)


def test_work_goes_on_while_clients_misbehave(served: Served) -> None:
    stop = threading.Event()
    errors: list[BaseException] = []
    attempts = [0] * 4

    def misbehave(index: int) -> None:
        while not stop.is_set():
            try:
                raw(served.url, os.urandom(256) + b"\r\n\r\n", timeout=15)
                with connect(served) as sock:  # asks, and leaves without reading
                    sock.sendall(b"GET /status.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            except ConnectionError:
                pass  # reset: fine
            except OSError as exc:
                errors.append(exc)
            attempts[index] += 1

    threads = [
        threading.Thread(target=misbehave, args=(i,), name=f"misbehave-{i}") for i in range(4)
    ]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 60
        batches = 0
        while sum(attempts) < 200 and time.monotonic() < deadline:
            futures = [served.grinder.enqueue(pow, i, 2) for i in range(100)]
            assert [f.result(timeout=60) for f in futures] == [i * i for i in range(100)]
            batches += 1
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not errors, errors
    assert sum(attempts) >= 200 and batches > 0
    assert_still_serving(served)
