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


def request_bytes(host: str, port: int, path: str, token: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\nauthorization: Bearer {token}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """(status, keep-alive) of one response, its body read and dropped."""
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
    if length:
        await reader.readexactly(length)
    return status, keep


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
                    status, keep = await _answer(reader)
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
