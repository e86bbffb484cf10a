"""The core upstream client against a real server over a socket: errors, retries, secrecy."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

from tether.core.errors import (
    UpstreamInvalidPayload,
    UpstreamNotFound,
    UpstreamRejected,
    UpstreamUnavailable,
)
from tether.core.http import RetryPolicy, UpstreamClient
from tether.core.simulator import SimulatorServer, SimulatorState

TOKEN = "s3cret-token-value"


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[SimulatorServer, dict[str, Any]]]:
    seen: dict[str, Any] = {"calls": {}, "auth": set()}
    app = FastAPI()

    @app.api_route("/{kind}", methods=["GET", "POST"])
    async def answer(kind: str, request: Request) -> Response:
        seen["calls"][kind] = seen["calls"].get(kind, 0) + 1
        seen["auth"].add(request.headers.get("authorization"))
        if kind == "ok":
            return Response('{"a": 1}', media_type="application/json")
        if kind == "garbage":
            return Response("<html>", media_type="application/json")
        if kind == "slow":
            await asyncio.sleep(1)
            return PlainTextResponse("late")
        if kind == "flaky" and seen["calls"][kind] < 3:
            return PlainTextResponse("try again", status_code=503)
        if kind == "flaky":
            return Response('{"ok": true}', media_type="application/json")
        return PlainTextResponse(f"status {kind}", status_code=int(kind))

    srv = SimulatorServer(app, FastAPI(), SimulatorState()).start_in_thread()
    yield srv, seen
    srv.stop()


def client(url: str, *, timeout: float = 2.0, attempts: int = 3) -> UpstreamClient:
    return UpstreamClient(
        system="test",
        base_url=url,
        token=TOKEN,
        timeout=httpx.Timeout(timeout),
        retry=RetryPolicy(attempts=attempts, base_s=0.01, max_s=0.02),
    )


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("404", UpstreamNotFound),
        ("400", UpstreamRejected),
        ("403", UpstreamRejected),
        ("500", UpstreamUnavailable),
        ("429", UpstreamUnavailable),
        ("garbage", UpstreamInvalidPayload),
    ],
)
async def test_statuses_map_to_typed_errors(
    server: tuple[SimulatorServer, dict[str, Any]], path: str, error: type[Exception]
) -> None:
    async with client(server[0].url, attempts=1) as c:
        with pytest.raises(error):
            await c.get_json(f"/{path}")


async def test_bearer_token_is_sent(server: tuple[SimulatorServer, dict[str, Any]]) -> None:
    async with client(server[0].url) as c:
        assert await c.get_json("/ok") == {"a": 1}
    assert f"Bearer {TOKEN}" in server[1]["auth"]


async def test_idempotent_calls_retry_until_success(
    server: tuple[SimulatorServer, dict[str, Any]],
) -> None:
    server[1]["calls"].pop("flaky", None)
    async with client(server[0].url, attempts=3) as c:
        assert await c.get_json("/flaky") == {"ok": True}
    assert server[1]["calls"]["flaky"] == 3


async def test_non_idempotent_calls_are_not_retried(
    server: tuple[SimulatorServer, dict[str, Any]],
) -> None:
    server[1]["calls"].pop("500", None)
    async with client(server[0].url, attempts=3) as c:
        with pytest.raises(UpstreamUnavailable):
            await c.request("POST", "/500", json_body={})
    assert server[1]["calls"]["500"] == 1


async def test_a_timed_out_call_is_not_retried(
    server: tuple[SimulatorServer, dict[str, Any]],
) -> None:
    """Slow, not down: asking again at once multiplied the wait of a user (a lookup waited
    three timeouts before its 503); a refused connection or a 5xx still is retried."""
    server[1]["calls"].pop("slow", None)
    async with client(server[0].url, timeout=0.1, attempts=3) as c:
        with pytest.raises(UpstreamUnavailable, match="timed out") as caught:
            await c.get_json("/slow")
    assert caught.value.timed_out and server[1]["calls"]["slow"] == 1


async def test_timeout_and_refused_connection_are_unavailable(
    server: tuple[SimulatorServer, dict[str, Any]],
) -> None:
    async with client(server[0].url, timeout=0.1, attempts=1) as c:
        with pytest.raises(UpstreamUnavailable, match="timed out"):
            await c.get_json("/slow")
    async with client("http://127.0.0.1:9", attempts=1) as c:
        with pytest.raises(UpstreamUnavailable, match="could not be reached"):
            await c.get_json("/ok")


async def test_logs_never_contain_the_token_or_person_ids(
    server: tuple[SimulatorServer, dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    from tether.core.logging import configure_logging, redact

    configure_logging("INFO")
    caplog.set_level(logging.INFO)
    async with client(server[0].url, attempts=1) as c:
        with pytest.raises(UpstreamRejected):
            await c.get_json("/400", params={"end_user": "01017012345"})
    text = "\n".join(redact(r.getMessage()) for r in caplog.records)
    assert TOKEN not in text
    assert redact("user 01017012345 Bearer abc") == "user <HIDDEN> Bearer <HIDDEN>"
    assert redact("gsrn 707057500000000018") == "gsrn 707057500000000018"
