"""A client that asks for a large response and never reads it loses the connection after
``send_timeout_s``: uvicorn waited for the drain for ever, holding the connection and a slot of
``limit_concurrency``. And uvicorn's own 400 and 503 carry the security headers, like the 408
and 431 the protocol writes.

A test-only ASGI app (a streamed response far larger than every buffer on the way) under
uvicorn with ``serve``'s options, on a real socket; the client's receive buffer is small, so
the server's transport fills and pauses at once."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from tests.core.test_limits import assert_raw_secured
from tether.core.limits import server_options
from tether.core.settings import Settings

DEADLINE_S = 1.0
WAIT_S = 20  # how long a test waits for the server to act: far beyond the deadline
CHUNK = b"x" * (1 << 20)
CHUNKS = 32  # 32 MiB: more than the client's and the server's socket buffers and uvicorn's


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    big = scope["path"] == "/big"
    headers = [(b"content-length", str(len(CHUNK) * CHUNKS if big else 2).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if not big:
        await send({"type": "http.response.body", "body": b"ok"})
        return
    for _ in range(CHUNKS):
        await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


class Served:
    """``app`` under uvicorn on a background thread with ``serve``'s protocol and limits."""

    def __init__(self, settings: Settings) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.address = self.sock.getsockname()
        self.url = f"http://127.0.0.1:{self.address[1]}"
        config = uvicorn.Config(
            app, lifespan="off", log_level="warning", access_log=False, **server_options(settings)
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=asyncio.run, args=(self.server.serve(sockets=[self.sock]),), daemon=True
        )
        self.thread.start()
        while not self.server.started:
            assert self.thread.is_alive(), "the server did not start"
            self.thread.join(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


def _settings(tmp_path: Path, **update: Any) -> Settings:
    base = Settings(database_url="postgresql://unused/unused", data_dir=tmp_path)  # type: ignore[call-arg]
    return base.model_copy(update={"send_timeout_s": DEADLINE_S, **update})


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = Served(_settings(tmp_path))
    yield server
    server.stop()


def _stalled_reader(served: Served) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: the window
    sock.connect(served.address)
    sock.sendall(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
    return sock


def _aborted(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "not read in time" in r.getMessage()]


def test_a_client_that_never_reads_its_response_is_cut_off(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with _stalled_reader(served) as sock:
        port = sock.getsockname()[1]
        for _ in range(WAIT_S * 20):  # poll: when it happens is the deadline's business
            if _aborted(caplog):
                break
            time.sleep(0.05)
        assert _aborted(caplog) == [
            f"Response not read in time by 127.0.0.1:{port}: connection aborted."
        ]
        # a reader now gets what was on the way, then the end: not the whole response
        sock.settimeout(WAIT_S)
        received = 0
        try:
            while chunk := sock.recv(1 << 16):
                received += len(chunk)
        except ConnectionResetError:
            pass
    assert received < len(CHUNK) * CHUNKS


def test_clients_that_read_are_not_cut_off(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    """Also while another client stalls: the deadline is each connection's own."""
    caplog.set_level(logging.INFO)
    with _stalled_reader(served), httpx.Client(base_url=served.url, timeout=WAIT_S) as client:
        whole = client.get("/big")
        assert whole.status_code == 200
        assert len(whole.content) == len(CHUNK) * CHUNKS
        assert client.get("/small").text == "ok"


def _answer(address: tuple[str, int], request: bytes) -> bytes:
    with socket.create_connection(address, timeout=WAIT_S) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_uvicorn_s_400_carries_the_security_headers(served: Served) -> None:
    answer = _answer(served.address, b"NOT HTTP AT ALL\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert answer.endswith(b"Invalid HTTP request received.")
    assert_raw_secured(answer)


def test_uvicorn_s_503_carries_the_security_headers(tmp_path: Path) -> None:
    server = Served(_settings(tmp_path, limit_concurrency=1))  # this connection is the one
    try:
        answer = _answer(server.address, b"GET /small HTTP/1.1\r\nHost: t\r\n\r\n")
    finally:
        server.stop()
    assert answer.startswith(b"HTTP/1.1 503 "), answer[:200]
    assert answer.endswith(b"Service Unavailable")
    assert_raw_secured(answer)
