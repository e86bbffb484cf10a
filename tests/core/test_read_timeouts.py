"""A client that sends its request slowly (slowloris) loses the connection: the head must arrive
within ``head_timeout_s``, the body within ``body_timeout_s``; a keep-alive connection idle
between requests is left to uvicorn's keep-alive timeout. The app as ``serve`` runs it, on a real
socket, with deadlines of half a second."""

from __future__ import annotations

import logging
import select
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.core.test_limits import assert_raw_secured
from tether.core.limits import server_options
from tether.core.settings import Settings

DEADLINE_S = 0.5
WAIT_S = 10  # how long a test waits for the server to close: far beyond the deadline


@pytest.fixture
def api(settings: Settings, start_api: Any) -> httpx.Client:
    quick = settings.model_copy(update={"head_timeout_s": DEADLINE_S, "body_timeout_s": DEADLINE_S})
    options = {k: v for k, v in server_options(quick).items() if k != "limit_concurrency"}
    client: httpx.Client = start_api(quick, **options)
    return client


def connect(api: httpx.Client) -> socket.socket:
    url = urlsplit(str(api.base_url))
    return socket.create_connection((url.hostname or "", url.port or 80), timeout=WAIT_S)


def rest(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (a timeout here fails the test)."""
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    return answer


def one_response(sock: socket.socket) -> bytes:
    """One whole response (head and its Content-Length of body) from a kept-alive connection."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {answer[:200]!r}"
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {answer[:200]!r}"
        body += chunk
    return head + b"\r\n\r\n" + body


def test_a_head_sent_a_byte_at_a_time_is_answered_408_and_closed(api: httpx.Client) -> None:
    """Each byte would restart uvicorn's own timer: the deadline counts from the first."""
    head = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 1000
    with connect(api) as sock:
        for byte in head:
            if select.select([sock], [], [], 0.02)[0]:
                break  # the server answered before the head was whole
            sock.sendall(bytes([byte]))
        else:
            pytest.fail("the whole head was sent a byte at a time without an answer")
        answer = rest(sock)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"connection: close" in answer
    assert_raw_secured(answer)


def test_a_connection_that_sends_nothing_is_closed(api: httpx.Client) -> None:
    with connect(api) as sock:
        assert rest(sock) == b""


def test_a_body_that_does_not_arrive_is_answered_408_and_closed(
    api: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """The route waiting for the body sees the client gone: nothing to answer, no error logged."""
    head = b"POST /login HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    with connect(api) as sock:
        sock.sendall(head + b"Content-Length: 100\r\n\r\ntoken=abc")
        answer = rest(sock)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert api.get("/healthz").status_code in (200, 503)  # the route's task has ended by now
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_keep_alive_connections_idle_past_the_deadline_still_serve(api: httpx.Client) -> None:
    """Between requests the head deadline does not run: the same connection answers again after
    idling longer than it (uvicorn's keep-alive timeout, 5 s, governs that time)."""
    request = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
    with connect(api) as sock:
        for _ in range(2):
            sock.sendall(request)
            assert one_response(sock).split(b" ", 2)[1] in (b"200", b"503")
            time.sleep(3 * DEADLINE_S)
    assert api.get("/healthz").status_code in (200, 503)


def closed_within(sock: socket.socket, seconds: float, every_s: float | None = None) -> None:
    """Fails unless the server closes ``sock`` within ``seconds`` (a CRLF sent each ``every_s``
    meanwhile)."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if select.select([sock], [], [], every_s or 0.05)[0]:
            try:
                if not sock.recv(65536):
                    return
            except ConnectionResetError:
                return
        elif every_s is not None:
            try:
                sock.sendall(b"\r\n")
            except OSError:
                return
    pytest.fail(f"still open after {seconds} s")


def test_a_crlf_after_a_response_does_not_hold_the_connection(api: httpx.Client) -> None:
    """httptools skips CR and LF between requests without starting one, and uvicorn stops its
    keep-alive timer at any byte: the head deadline runs from that byte instead (well before
    the 5 s keep-alive timeout)."""
    with connect(api) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        one_response(sock)
        sock.sendall(b"\r\n")
        closed_within(sock, 4)


def test_crlfs_sent_every_moment_do_not_hold_the_connection(api: httpx.Client) -> None:
    """Each CRLF would restart uvicorn's keep-alive timer: the deadline counts from the first."""
    with connect(api) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        one_response(sock)
        closed_within(sock, 4, every_s=0.2)


def test_a_head_after_a_slow_body_gets_its_own_deadline(settings: Settings, start_api: Any) -> None:
    """The timer left for a body's later deadline (it fired at the head's and was re-armed) made
    the next head wait for it: a head dripped for 18 s instead of 10. A head's earlier deadline
    moves the timer."""
    quick = settings.model_copy(update={"head_timeout_s": DEADLINE_S, "body_timeout_s": 8.0})
    options = {k: v for k, v in server_options(quick).items() if k != "limit_concurrency"}
    api = start_api(quick, **options)
    head = b"POST /login HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    with connect(api) as sock:
        sock.sendall(head + b"Content-Length: 9\r\n\r\n")
        time.sleep(3 * DEADLINE_S)  # past the head's deadline, well within the body's
        sock.sendall(b"token=abc")
        assert one_response(sock).split(b" ", 2)[1] != b"408"
        start = time.monotonic()
        for byte in b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 1000:
            if select.select([sock], [], [], 0.05)[0]:
                break
            sock.sendall(bytes([byte]))
        answer, waited = rest(sock), time.monotonic() - start
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert waited < 4.0  # the head's 0.5 s, not what remained of the body's 8 s (6.5 s)
