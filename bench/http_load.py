"""A lean HTTP/1.1 keep-alive load client for the intake benchmarks.

httpx costs about 1.4 ms of CPU per request on this machine: 16 httpx clients in one process
saturate a core near 600 requests/s, so a server faster than that could not be measured on 2
cores. These clients write prebuilt request bytes on raw asyncio streams and read the status,
headers and a Content-Length body: tens of microseconds per request. Each request still waits
for its answer before the next (closed loop), as a keep-alive client does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Tally:
    ok: int = 0  # requests answered with the expected status
    failed: int = 0
    seconds: float = 0.0


def request_bytes(
    host: str,
    port: int,
    path: str,
    token: str,
    body: bytes = b"",
    *,
    method: str = "POST",
    headers: dict[str, str] | None = None,
) -> bytes:
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    kind = f"content-type: application/json\r\ncontent-length: {len(body)}\r\n" if body else ""
    head = (
        f"{method} {path} HTTP/1.1\r\nhost: {host}:{port}\r\nauthorization: Bearer {token}\r\n"
        f"{extra}{kind}\r\n"
    )
    return head.encode() + body


async def answer(reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
    """(status, keep-alive, body) of one response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, keep = 0, True
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            keep = False
        elif name == b"transfer-encoding":
            raise ConnectionError("chunked answers are not read by this client")
    body = await reader.readexactly(length) if length else b""
    return status, keep, body


class Connection:
    """One keep-alive connection: a request, then its answer; opened again when the server
    closed it (a request that failed on a dropped connection is sent once more)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.retries = 0

    async def ask(self, request: bytes) -> tuple[int, bytes]:
        for attempt in (1, 2):
            if self._streams is None:
                self._streams = await asyncio.open_connection(self.host, self.port)
            reader, writer = self._streams
            try:
                writer.write(request)
                status, keep, body = await answer(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                self.close()
                if attempt == 2:
                    raise
                self.retries += 1
                continue
            if not keep:
                self.close()
            return status, body
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


async def run(
    host: str,
    port: int,
    make_request: Callable[[], bytes],
    *,
    clients: int,
    seconds: float,
    expect: int,
) -> Tally:
    """``clients`` connections, each sending ``make_request()`` and awaiting its answer, until
    ``seconds`` have passed; a connection closed by the server is opened again."""
    tally = Tally()
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < deadline:
                writer.write(make_request())
                try:
                    status, keep, _ = await answer(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    status, keep = 0, False
                if status == expect:
                    tally.ok += 1
                else:
                    tally.failed += 1
                if not keep:
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    tally.seconds = time.perf_counter() - start
    return tally
