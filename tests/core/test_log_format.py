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

from tether.core.logging import _RedactingFormatter, configure_logging


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


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """tether's logging (text lines) into a buffer; the loggers it touched are restored after."""
    touched = [
        logging.getLogger(name) for name in ("", "uvicorn", "uvicorn.error", "uvicorn.access")
    ]
    saved = [(lg.handlers[:], lg.level, lg.propagate) for lg in touched]
    out = io.StringIO()
    with contextlib.redirect_stderr(out):
        configure_logging("INFO")
    yield out
    for lg, (handlers, level, propagate) in zip(touched, saved, strict=True):
        lg.handlers[:], lg.propagate = handlers, propagate
        lg.setLevel(level)


async def _ok(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def test_a_credential_in_the_query_string_is_masked_in_the_access_log(logs: io.StringIO) -> None:
    """uvicorn's access line carries the query string: a token a client put there (a link, a
    script) must not land in the log; the rest of the line stays readable."""
    secret = "s3cr3t-query-credential"
    key = "tth_0123456789abcdef_" + "K" * 43
    sock = socket.create_server(("127.0.0.1", 0))
    config = uvicorn.Config(_ok, log_config=None, log_level="info", access_log=True)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=asyncio.run, args=(server.serve(sockets=[sock]),))
    thread.start()
    try:
        while not server.started:
            thread.join(0.01)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        query = f"next=%2Fconsole&token={secret}&access_token={secret}&q={key}"
        assert httpx.get(f"{url}/login?{query}").status_code == 200
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
    lines = [line for line in logs.getvalue().splitlines() if "uvicorn.access" in line]
    assert len(lines) == 1, logs.getvalue()
    assert secret not in lines[0] and key not in lines[0]
    assert (
        "GET /login?next=%2Fconsole&token=<HIDDEN>&access_token=<HIDDEN>&q=tth_<HIDDEN>" in lines[0]
    )
    assert lines[0].endswith(" 200"), lines[0]
