"""uvicorn's httptools protocol with bounds on the request head's size and on the time a client
takes to send its request.

httptools parses a request two to three times cheaper than h11, which matters for the intake
routes (many small POSTs), but unlike h11 it has no limit on a head that arrives in pieces: a
client could stream header bytes for ever into the parser's buffers. This protocol counts the
bytes fed while a head is incomplete and answers 431 (then closes) once they pass the limit. A
head that arrived whole is checked again, exactly, by ``limits.InputGuard``.

Nor does uvicorn bound time before a response (its keep-alive timeout runs only between
requests, and any byte stops it): a client sending a head or a body a byte at a time (slowloris)
held a connection, and a slot of ``limit_concurrency``, for ever. Here the head must be complete
within ``head_timeout_s`` of the connection or of its first byte (a keep-alive connection's next
request; a bare CR or LF between requests counts, since it stops uvicorn's keep-alive timer),
and the body within ``body_timeout_s`` of the head; else 408 (when no response has
started) and the connection is closed. Idle keep-alive connections stay uvicorn's. One timer per
connection, re-armed when it fires; a request only stores its deadline, and moves the timer only
when that deadline is earlier (a head after a body that came before its own deadline).

Nor does uvicorn bound the time a response takes to leave: a client that asks for large responses
and never reads fills the transport's buffer, uvicorn pauses (a streamed response waits for a
drain that never comes; a whole one sits in the buffer, and a close waits for it to flush), and
the connection and its slot of ``limit_concurrency`` are held for ever. Here a transport paused
for writing longer than ``send_timeout_s`` (a client reading nothing meanwhile) is
aborted, its buffer dropped (the first resume cancels the timer).

uvicorn's own 400 (a request the parser rejects) and its 503 (``limit_concurrency`` reached)
carry the security headers too: the 400 is this protocol's ``refuse``; the 503 is uvicorn's
small ASGI app, run with this connection's default headers plus them.

The size limit is uvicorn's ``h11_max_incomplete_event_size`` setting, the same number h11 used,
so ``server_options`` stays the one place that sets it; the timeouts come through
``functools.partial`` of this class (a class, not a closure: uvicorn's worker processes unpickle
it by name).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tether.core.headers import PROTOCOL_HEADERS, RAW_HEADERS

_TOO_LARGE = b"request head too large"
_TOO_SLOW = b"request not received in time"


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that refuses a request head over the configured size with 431, a
    request whose head or body is not received in time with 408, and aborts a connection whose
    response the client does not read for ``send_timeout_s``."""

    def __init__(
        self,
        *args: Any,
        head_timeout_s: float = 10.0,
        body_timeout_s: float = 30.0,
        send_timeout_s: float = 30.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.head_limit: int = self.config.h11_max_incomplete_event_size or 16 * 1024
        self.head_bytes = 0  # bytes fed since the current head began (0 while in a body)
        self.in_head = True
        self.head_timeout_s, self.body_timeout_s = head_timeout_s, body_timeout_s
        self.deadline: float | None = None  # when the part being received must be complete
        self.read_timer: asyncio.TimerHandle | None = None
        self.send_timeout_s = send_timeout_s
        self.write_timer: asyncio.TimerHandle | None = None  # armed while writing is paused

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.expect(self.head_timeout_s)  # a connection that never says anything is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        if self.read_timer is not None:
            self.read_timer.cancel()
            self.read_timer = None
        if self.write_timer is not None:
            self.write_timer.cancel()
            self.write_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.deadline is None and (self.cycle is None or self.cycle.response_complete):
            # a byte on an idle keep-alive connection stops uvicorn's keep-alive timer, and
            # httptools skips a CR or LF between requests without a message begin: the head
            # deadline runs from this byte, or CRLFs would hold the connection for ever
            self.expect(self.head_timeout_s)
        if self.in_head:
            self.head_bytes += len(data)
        super().data_received(data)
        if self.in_head and self.head_bytes > self.head_limit and not self.transport.is_closing():
            self.refuse_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.in_head = True
        if self.deadline is None:  # the first byte of a keep-alive or pipelined request
            self.expect(self.head_timeout_s)

    def on_headers_complete(self) -> None:
        self.in_head, self.head_bytes = False, 0
        self.expect(self.body_timeout_s)
        earlier, limit = self.cycle, self.limit_concurrency
        # uvicorn's own test, made before it adds this request's task: it answers 503 then
        full = limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit)
        super().on_headers_complete()
        if full and self.cycle is not None and self.cycle is not earlier:
            self.cycle.default_headers = [*self.cycle.default_headers, *PROTOCOL_HEADERS]

    def on_message_complete(self) -> None:
        self.in_head, self.head_bytes, self.deadline = True, 0, None
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self.deadline = None  # the connection is the WebSocket protocol's from now on
        super().handle_websocket_upgrade()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.write_timer is None:
            self.write_timer = self.loop.call_later(self.send_timeout_s, self.write_stalled)

    def resume_writing(self) -> None:
        if self.write_timer is not None:
            self.write_timer.cancel()
            self.write_timer = None
        super().resume_writing()

    def write_stalled(self) -> None:
        """The client read nothing for ``send_timeout_s``: drop the connection and its buffer
        (a close would wait for the buffer to flush, which is what never happens)."""
        self.write_timer = None
        if not self.flow.write_paused:
            return
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "unknown client"
        self.logger.warning("Response not read in time by %s: connection aborted.", client)
        self.transport.abort()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request its parser rejects, with the security headers."""
        self.refuse(b"400 Bad Request", msg.encode("ascii"))
        self.transport.close()

    def expect(self, seconds: float) -> None:
        """The part now being received must be complete within ``seconds``."""
        self.deadline = self.loop.time() + seconds
        if self.read_timer is not None and self.read_timer.when() > self.deadline:
            # a body that came early left its timer for its own, later deadline: the next
            # head's 408 waited for it (18 s of a head dripped instead of 10)
            self.read_timer.cancel()
            self.read_timer = None
        if self.read_timer is None:
            self.read_timer = self.loop.call_at(self.deadline, self.check_deadline)

    def check_deadline(self) -> None:
        self.read_timer = None
        if self.deadline is None or self.transport.is_closing():
            return  # idle between requests (uvicorn's keep-alive timeout), or closed
        if self.loop.time() < self.deadline:  # a later part: wait for its own deadline
            self.read_timer = self.loop.call_at(self.deadline, self.check_deadline)
            return
        if self.in_head:  # answer unless an earlier request's response is still going out
            started = self.head_bytes > 0
            answer = started and (self.cycle is None or self.cycle.response_complete)
        else:
            started, answer = True, not self.cycle.response_started
        if started:  # (a connection that never sent a byte is closed without a word)
            part = "head" if self.in_head else "body"
            self.logger.warning("Request %s not received in time: connection closed.", part)
        if answer:
            self.refuse(b"408 Request Timeout", _TOO_SLOW)
        self.transport.close()

    def refuse_head(self) -> None:
        self.logger.warning("Request head over %d bytes refused.", self.head_limit)
        self.refuse(b"431 Request Header Fields Too Large", _TOO_LARGE)
        self.transport.close()

    def refuse(self, status: bytes, text: bytes) -> None:
        """Write a plain-text answer with uvicorn's own headers (date, server) and the security
        headers every response of the app carries: no app runs for it to add them."""
        server = b"".join(n + b": " + v + b"\r\n" for n, v in self.server_state.default_headers)
        self.transport.write(
            b"HTTP/1.1 " + status + b"\r\n" + server + RAW_HEADERS
            + b"content-type: text/plain; charset=utf-8\r\n"
            b"content-length: " + str(len(text)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + text
        )  # fmt: skip
