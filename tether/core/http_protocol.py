"""uvicorn's httptools protocol with a bound on the request head.

httptools parses a request two to three times cheaper than h11, which matters for the intake
routes (many small POSTs), but unlike h11 it has no limit on a head that arrives in pieces: a
client could stream header bytes for ever into the parser's buffers. This protocol counts the
bytes fed while a head is incomplete and answers 431 (then closes) once they pass the limit. A
head that arrived whole is checked again, exactly, by ``limits.InputGuard``.

The limit is uvicorn's ``h11_max_incomplete_event_size`` setting, the same number h11 used, so
``server_options`` stays the one place that sets it (a class, not a closure: uvicorn's worker
processes import it by name).
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_TOO_LARGE = b"request head too large"


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that refuses a request head over the configured size with 431."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_limit: int = self.config.h11_max_incomplete_event_size or 16 * 1024
        self.head_bytes = 0  # bytes fed since the current head began (0 while in a body)
        self.in_head = True

    def data_received(self, data: bytes) -> None:
        if self.in_head:
            self.head_bytes += len(data)
        super().data_received(data)
        if self.in_head and self.head_bytes > self.head_limit and not self.transport.is_closing():
            self.refuse_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.in_head = True

    def on_headers_complete(self) -> None:
        self.in_head, self.head_bytes = False, 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self.in_head, self.head_bytes = True, 0
        super().on_message_complete()

    def refuse_head(self) -> None:
        self.logger.warning("Request head over %d bytes refused.", self.head_limit)
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: text/plain; charset=utf-8\r\n"
            b"content-length: " + str(len(_TOO_LARGE)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + _TOO_LARGE
        )
        self.transport.close()
