"""Bad and oversized input gets a short 4xx, never a 500 or an echo: the app as ``serve`` runs
it (httptools with a bounded head, tether's uvicorn options) on a real socket."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from tether.core.headers import PAGES_CSP
from tether.core.limits import InputGuard, malformed, server_options
from tether.core.settings import Settings

LIMIT = 10_000
LOOKUP = "/api/v1/controllable-unit/lookup"
EVENTS = "/api/v1/events"


@pytest.fixture
def api(settings: Settings, start_api: Any) -> httpx.Client:
    limited = settings.model_copy(update={"max_body_bytes": LIMIT})
    options = {k: v for k, v in server_options(limited).items() if k != "limit_concurrency"}
    client: httpx.Client = start_api(limited, **options)
    return client


def raw(api: httpx.Client, request: bytes) -> tuple[int, bytes]:
    """Send bytes as they are (no client-side checks); the status and the whole answer."""
    url = urlsplit(str(api.base_url))
    with socket.create_connection((url.hostname or "", url.port or 80), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1]), answer


def auth(api: httpx.Client) -> bytes:
    return f"Authorization: {api.headers['authorization']}\r\n".encode()


def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(api: httpx.Client) -> None:
    head = (
        f"POST {LOOKUP} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        f"Content-Length: {50 * LIMIT}\r\n"
    ).encode()
    status, answer = raw(api, head + auth(api) + b"\r\n" + b"[" * 100)  # the rest never sent
    assert status == 413 and b"BodyTooLarge" in answer


def test_a_chunked_body_over_the_limit_is_refused(api: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"[" * 1000

    response = api.post(EVENTS, content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"] == "BodyTooLarge"


def test_validation_errors_name_the_field_but_echo_no_more_than_an_excerpt(
    api: httpx.Client,
) -> None:
    secret_ish = "A" * 5000
    response = api.post(LOOKUP, json={"end_user": secret_ish, "accounting_point": "1"})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "InvalidInput" and "end_user" in body["detail"]
    assert "A" * 101 not in response.text and len(response.text) < 2000
    huge_key = api.post(LOOKUP, json={"x" * 3000: 1})
    assert huge_key.status_code == 422 and "x" * 101 not in huge_key.text


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/accounting-points/%00",
        "/api/v1/accounting-points/ab%00cd/history",
        "/api/v1/accounting-points/%ff%fe",
        "/api/v1/accounting-points/1?x=%00",
        "/api/v1/compliance-report-versions/1/invoice?invoice_type=%c3%28",
    ],
)
def test_nul_bytes_and_invalid_utf8_in_the_url_are_400(api: httpx.Client, path: str) -> None:
    status, answer = raw(api, f"GET {path} HTTP/1.1\r\nHost: t\r\n".encode() + auth(api) + b"\r\n")
    assert status == 400, answer


def test_non_ascii_or_control_characters_in_authorization_are_400(api: httpx.Client) -> None:
    for value in ("Bearer tøken".encode("latin-1"), "Bearer ключ".encode(), b"Bearer a\x01b"):
        request = b"GET /metrics HTTP/1.1\r\nHost: t\r\nAuthorization: " + value + b"\r\n\r\n"
        status, answer = raw(api, request)
        assert status == 400, answer
    status, _ = raw(api, b"GET /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: x1\r\n\r\n")
    assert 400 <= status < 500


def test_strict_headers_allow_exactly_printable_ascii_and_tab() -> None:
    for byte in range(256):
        scope = {"path": "/", "headers": [(b"authorization", b"Bearer a" + bytes([byte]) + b"b")]}
        allowed = byte == 0x09 or 0x20 <= byte <= 0x7E
        assert (malformed(scope) is None) == allowed, hex(byte)


def test_oversized_headers_are_refused_by_the_server(api: httpx.Client) -> None:
    big = b"X-Filler: " + b"a" * 40_000 + b"\r\n"
    status, _ = raw(api, b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + big + b"\r\n")
    assert 400 <= status < 500


def test_a_long_request_target_is_refused_like_long_headers(
    api: httpx.Client, settings: Settings
) -> None:
    """The path and query string count towards the head too: a 60 KB query string sent in one
    piece was answered 200 (only headers were counted)."""
    query = b"x=" + b"a" * 60_000
    status, answer = raw(api, b"GET /healthz?" + query + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    assert status in (414, 431), answer[:200]
    fine = api.get("/healthz", params={"x": "a" * (settings.max_header_bytes // 2)})
    assert fine.status_code == 200


def test_a_head_arriving_in_pieces_is_refused_once_it_passes_the_limit(
    api: httpx.Client, settings: Settings
) -> None:
    """The parser would buffer a head sent slowly for ever; the server answers 431 and closes
    while the head is still incomplete (the client never sends its end)."""
    url = urlsplit(str(api.base_url))
    with socket.create_connection((url.hostname or "", url.port or 80), timeout=10) as sock:
        sent = sock.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
        while sent <= settings.max_header_bytes:  # then stop: no unread bytes, no reset
            sock.sendall(b"X-Filler: " + b"a" * 988 + b"\r\n")
            sent += 1000
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert_raw_secured(answer)


def assert_raw_secured(answer: bytes) -> None:
    """An answer the HTTP protocol writes itself carries the app's security headers and a date."""
    lines = answer.partition(b"\r\n\r\n")[0].decode().split("\r\n")[1:]
    headers = dict(line.lower().split(": ", 1) for line in lines)
    assert headers["x-content-type-options"] == "nosniff", headers
    assert headers["x-frame-options"] == "deny"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["content-security-policy"] == PAGES_CSP.lower()
    assert headers["cache-control"] == "no-store"
    assert "date" in headers


def test_keep_alive_requests_each_get_a_fresh_head_allowance(api: httpx.Client) -> None:
    """The head count restarts with every request: many small requests on one connection, far
    more head bytes than the limit in all, are all answered."""
    for _ in range(40):
        response = api.get("/healthz", headers={"X-Filler": "a" * 1000})
        assert response.status_code in (200, 503), response.text


def test_nul_bytes_and_invalid_text_in_bodies_are_4xx(api: httpx.Client) -> None:
    named = api.post(
        "/api/v1/controllable-units", json={"name": "a\u0000b", "accounting_point": "a\u0000"}
    )
    assert 400 <= named.status_code < 500, named.text
    invalid = api.post(
        LOOKUP, content=b'{"end_user": "\xff\xfe"}', headers={"Content-Type": "application/json"}
    )
    assert 400 <= invalid.status_code < 500, invalid.text
    event = api.post(EVENTS, content=b"\xff\xfe{", headers={"Content-Type": "application/json"})
    assert 400 <= event.status_code < 500, event.text
    nul_event = {"specversion": "1.0", "id": "1", "source": "s", "type": "t", "subject": "1\u0000"}
    posted = api.post(EVENTS, json=nul_event)
    assert 400 <= posted.status_code < 500, posted.text


def test_event_batches_are_bounded_in_length_and_nesting(api: httpx.Client) -> None:
    deep = api.post(EVENTS, content=b"[" * 5000 + b"]" * 5000)
    assert deep.status_code == 422, deep.text
    event = {"specversion": "1.0", "id": "1", "source": "s", "type": "t", "subject": "1" * 18}
    many = json.dumps([event] * 1001).encode()
    assert len(many) > LIMIT  # the body limit is hit first at this setting
    assert api.post(EVENTS, content=many).status_code == 413


async def test_a_body_of_one_content_length_reaches_the_app_unwrapped() -> None:
    """The server reads no more than a Content-Length within the limit, so the guard counts
    nothing: the app gets the server's own receive and send (the wrappers were a third of the
    guard's cost); a chunked body is still counted."""
    seen: list[tuple[Receive, Send]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((receive, send))

    async def receive() -> Message:
        return {"type": "http.request", "body": b"{}"}

    async def send(message: Message) -> None:
        pass

    guard = InputGuard(app, max_body_bytes=LIMIT, max_header_bytes=8192)
    head = [(b"host", b"t"), (b"content-length", b"2")]
    scope = {"type": "http", "path": "/", "raw_path": b"/", "query_string": b"", "headers": head}
    await guard(scope, receive, send)
    chunked = [(b"host", b"t"), (b"transfer-encoding", b"chunked")]
    await guard({**scope, "headers": chunked}, receive, send)
    both = [*head, (b"transfer-encoding", b"chunked")]
    await guard({**scope, "headers": both}, receive, send)
    assert seen[0] == (receive, send)
    assert all(r is not receive and s is not send for r, s in seen[1:])
