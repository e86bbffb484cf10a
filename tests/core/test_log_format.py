"""tether's log lines: one per record, its extras as fields, masked; uvicorn's coloured copy of
its message (``color_message``, terminal escape codes) is not one of them."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from tether.core.logging import _RedactingFormatter, configure_logging, hide_passwords, redact


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord(
        "uvicorn.error", logging.INFO, "", 0, "Started process [%d]", (7,), None
    )
    record.__dict__.update(extra)
    return record


def test_uvicorns_coloured_message_is_left_out_in_text_and_json() -> None:
    coloured = _record(color_message="Started process [\x1b[36m%d\x1b[0m]", action="started")
    text = _RedactingFormatter(as_json=False).format(coloured)
    assert "\x1b" not in text and "color_message" not in text and "action=started" in text
    payload = json.loads(_RedactingFormatter(as_json=True).format(coloured))
    assert "color_message" not in payload and payload["action"] == "started"
    assert payload["message"] == "Started process [7]"


@contextlib.contextmanager
def _configured(as_json: bool) -> Iterator[io.StringIO]:
    """tether's logging into a buffer; the loggers it touched are restored after."""
    touched = [
        logging.getLogger(name) for name in ("", "uvicorn", "uvicorn.error", "uvicorn.access")
    ]
    saved = [(lg.handlers[:], lg.level, lg.propagate) for lg in touched]
    out = io.StringIO()
    with contextlib.redirect_stderr(out):
        configure_logging("INFO", as_json)
    try:
        yield out
    finally:
        for lg, (handlers, level, propagate) in zip(touched, saved, strict=True):
            lg.handlers[:], lg.propagate = handlers, propagate
            lg.setLevel(level)


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    with _configured(as_json=False) as out:
        yield out


async def _ok(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


SECRET = "8eoy816fPeGcQLOWAmPobC6sjTYQRWl"
KEY = "tth_17bd37a2be59c91b_PdsMzZyrwZ-aUCcw7HKYCvxqvBt9ZnCcmFvD0f-4MlM"
# the ways a credential reached uvicorn's access line unmasked when names of credentials were
# matched in the raw query string
QUERIES = [
    f"token={SECRET}",
    f"authorization=Bearer%20{SECRET}",
    f"authorization=Bearer+{SECRET}",
    f"auth={SECRET}",
    f"access_key={SECRET}",
    f"x-api-key={SECRET}",
    f"tok%65n={SECRET}",
    f"api%5Fkey={SECRET}",
    f"token%3D{SECRET}",
    f"a=1;token={SECRET}",
    f"token[]={SECRET}",
    f"k={KEY.replace('_', '%5F')}",
    f"k={KEY.replace('-', '%2D')}",
    f"k={KEY.upper()}",
    f"k=TTH_{KEY[4:]}",
    f"{SECRET}",
]


def leaks(line: str) -> bool:
    return any(part in line.upper() for part in (SECRET.upper(), "PDSMZZYRWZ", "4MLM"))


def test_query_values_are_hidden_in_the_access_log_and_names_kept(logs: io.StringIO) -> None:
    """uvicorn's access line carries the query string: a credential a client put there (a link,
    a script) must not land in the log, however it is written; the names stay, decoded, so an
    operator still sees which parameters came."""
    sock = socket.create_server(("127.0.0.1", 0))
    config = uvicorn.Config(_ok, log_config=None, log_level="info", access_log=True)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=asyncio.run, args=(server.serve(sockets=[sock]),))
    thread.start()
    try:
        while not server.started:
            thread.join(0.01)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        with httpx.Client(base_url=url) as client:
            for query in [*QUERIES, "next=%2Fconsole&tok%65n=a%0Ab&x%0Ay=1"]:
                assert client.get(f"/login?{query}").status_code == 200
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
    lines = [line for line in logs.getvalue().splitlines() if "uvicorn.access" in line]
    assert len(lines) == len(QUERIES) + 1, logs.getvalue()
    assert [line for line in lines if leaks(line)] == []
    assert "GET /login?next=<HIDDEN>&token=<HIDDEN>&x%0Ay=<HIDDEN> HTTP/1.1" in lines[-1]
    assert "GET /login?api_key=<HIDDEN> HTTP" in lines[7] and "?<HIDDEN> HTTP" in lines[-2]
    assert lines[-1].endswith(" 200"), lines[-1]


def test_credentials_written_in_other_ways_are_masked_in_any_line() -> None:
    """Other lines (an upstream call's path, an upstream answer) keep their values: the
    credential patterns are case-insensitive and know percent-encoded keys and schemes."""
    for text in [
        *(f"GET /x?{query}" for query in QUERIES[:6] + QUERIES[8:-1]),
        f'Authorization: Bearer "{SECRET}"',
        f"Authorization: Bearer={SECRET}",
        f"authorization: bearer:{SECRET}",
        f"Authorization: Basic {SECRET}",
        f"Authorization: Token {SECRET}",
        f'{{"token": "{SECRET}"}}',
        f"password: {SECRET}",
        f"Cookie: tether_session={SECRET}.abc",
    ]:
        assert not leaks(redact(text)), (text, redact(text))
    assert redact("Bearer abc, basic dXNlcjpwYXNz") == ("Bearer <HIDDEN>, basic <HIDDEN>")
    assert redact("token_kind=oidc status 404") == "token_kind=oidc status 404"


def test_the_word_token_after_bearer_in_prose_is_no_credential() -> None:
    """An upstream's 401 said "missing or wrong bearer token" and the log showed "bearer
    <HIDDEN>", as if a credential had been sent back. Only the bare word at the end of its text
    is kept: followed by more, it may start a credential, and stays masked."""
    for text in [
        '{"detail":"missing or wrong bearer token"}',
        '{\\"detail\\":\\"missing bearer token\\"}',
        "HTTP 401: missing or wrong Bearer Token.",
        "no basic credentials, so 401",
    ]:
        assert redact(text) == text
    assert redact("Bearer token abc") == "Bearer <HIDDEN> abc"
    assert redact("Bearer tokens4711") == "Bearer <HIDDEN>"
    assert redact(f'"bearer {SECRET}"') == '"bearer <HIDDEN>"'


def test_url_passwords_are_hidden_in_log_lines_and_errors() -> None:
    """libpq quotes a malformed DATABASE_URL whole ("... in URI: \"postgresql://u:pw@[::1/x\"")
    and an error printed it, password included. Up to the word's last ``@``: a password may
    hold one; an example's placeholder stays."""
    quoted = 'in URI: "postgresql://u:s3cr3t@[::1/x"'
    assert hide_passwords(quoted) == 'in URI: "postgresql://u:***@[::1/x"'
    assert redact(quoted) == 'in URI: "postgresql://u:<HIDDEN>@[::1/x"'
    for text, shown in [
        ("postgresql://u:s3@cr/3t@db:5432/x up", "postgresql://u:***@db:5432/x up"),
        ("https://:s3cr3t@host/x", "https://:***@host/x"),
        ("host=db password=s3cr3t port=1", "host=db password=*** port=1"),
        ("host=db password='s3 cr3t' port=1", "host=db password=*** port=1"),
        (
            "postgresql://u@db/x?password=s3cr3t&sslmode=x",
            "postgresql://u@db/x?password=***&sslmode=x",
        ),
        ("e.g. postgresql://user:password@host:5432/dbname", None),
        ("http://db:8080/x postgresql://u@db/x", None),
    ]:
        assert hide_passwords(text) == (shown or text)
        assert "cr3t" not in redact(text)


def test_json_lines_stay_json_and_hide_quoted_secrets() -> None:
    """JSON lines were masked after quoting: the ``\\`` of ``\\"`` passed for the value, the
    secret stayed and a bare ``"`` broke the line. Each text is masked before it is quoted."""
    logger = logging.getLogger("tether.test_json_masking")
    with _configured(as_json=True) as out:
        logger.warning("upstream said %s", '{"password": "pw123", "token": "tk 456"}')
        logger.warning('header Authorization: Bearer "abc123"')
        logger.warning("connect", extra={"dsn": 'password="s3cret" host=x', "db_password": "a b"})
        try:
            raise ValueError('refused token="tk789"')
        except ValueError:
            logger.exception("failed", extra={"ids": [12345678901, 3], "n": 2.5})
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    text = json.dumps(lines)
    assert [s for s in ("pw123", "456", "abc123", "s3cret", "tk789", "901") if s in text] == []
    assert lines[0]["message"] == 'upstream said {"password": "<HIDDEN>", "token": "<HIDDEN>"}'
    assert lines[2]["dsn"] == 'password="<HIDDEN>" host=x' and lines[2]["db_password"] == "<HIDDEN>"
    assert 'token="<HIDDEN>"' in lines[3]["exc"] and lines[3]["ids"] == ["<HIDDEN>", 3]
    assert lines[3]["n"] == 2.5 and lines[2]["message"] == "connect"


def test_quoted_and_encoded_credentials_are_hidden_whole() -> None:
    """A quoted value goes up to its closing quote, not its first space; a scheme after ``%20``
    (no word boundary after ``0``) or ``%09``, ``%3A`` after a name and a doubly encoded key
    are matched too."""
    assert redact('{"password": "correct horse battery"}') == '{"password": "<HIDDEN>"}'
    assert redact("password='a b' next") == "password='<HIDDEN>' next"
    assert redact('{\\"token\\": \\"a b\\"}') == '{\\"token\\": \\"<HIDDEN>\\"}'
    assert redact('Bearer "x y"') == 'Bearer "<HIDDEN>"'
    for text in [
        f"GET /api/v1/status/a%20Bearer%20{SECRET} HTTP/1.1",
        f"Bearer%09{SECRET}",
        f"Bearer%2520{SECRET}",
        f"password%3A{SECRET}",
        f"token%253D{SECRET}",
        f"k={KEY.replace('_', '%255F')}",
        # 16 KB made so a backtracking pattern would retry at each position: masked at once,
        # the patterns being linear (see ``_VALUE``); a quadratic one would take minutes
        'password: "' + "\\a " * 5000 + SECRET + '"',
        "token:" + " \t" * 8000 + f"bearer {SECRET}",
        "%20bearer" * 1800 + f"%20{SECRET}",
        "token=" * 2700 + SECRET,
    ]:
        assert not leaks(redact(text)), (text, redact(text))


def test_fields_of_the_process_are_on_every_line_text_and_json() -> None:
    """A worker child's lane and pid on each of its lines, so two children's are told apart."""
    fields = {"worker": "prompt:4711"}
    text = _RedactingFormatter(as_json=False, fields=fields).format(_record(action="x"))
    assert text.endswith("Started process [7] action=x worker=prompt:4711")
    payload = json.loads(_RedactingFormatter(as_json=True, fields=fields).format(_record()))
    assert payload["worker"] == "prompt:4711"
