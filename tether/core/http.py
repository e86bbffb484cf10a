"""The upstream client every capability's client.py builds on.

It owns the parts every external call needs: bearer auth, explicit timeouts, jittered retries for
idempotent calls, translation of httpx errors into tether's ``Upstream*`` errors, one log line per
call (personal ids masked) and Prometheus metrics per system and outcome.

Requests are httpx ``Request``/``Response`` objects sent straight through an httpx transport, by
default ``httpx_aiohttp.AiohttpTransport`` (aiohttp's connection pool). Measured on the sync
worker's hot path (bench/RESULTS.md): ``httpx.AsyncClient`` on httpcore cost about 1.5 ms of CPU
per request at 32 in flight (its pool rescans every connection per request); the same requests
through this path cost about 0.2 ms. Cookies, redirects and auth flows, which ``AsyncClient``
would add per request, are things no upstream of ours uses.

``get_json`` on the default transport skips the httpx objects: it asks the same aiohttp session
directly and reads the body as bytes (about 0.25 instead of 0.43 ms of CPU per GET at 32 in
flight, measured on a loaded machine), with aiohttp's errors mapped to httpx's exactly as the
transport maps them, so every caller sees the same exceptions and outcomes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import map_aiohttp_exceptions
from prometheus_client import Counter, Histogram

from tether.core.errors import (
    UpstreamError,
    UpstreamInvalidPayload,
    UpstreamNotFound,
    UpstreamRejected,
    UpstreamUnavailable,
)
from tether.core.logging import redact

logger = logging.getLogger(__name__)
T = TypeVar("T")

UPSTREAM_REQUESTS = Counter(
    "tether_upstream_requests_total", "Calls to external systems", ["system", "outcome"]
)
UPSTREAM_SECONDS = Histogram(
    "tether_upstream_request_seconds",
    "Duration of calls to external systems",
    ["system"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Full-jitter exponential backoff for idempotent calls."""

    attempts: int = 3
    base_s: float = 0.1
    max_s: float = 2.0

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.max_s, self.base_s * 2**attempt))


class UpstreamClient:
    """A typed, bounded-time HTTP client for one external system."""

    def __init__(
        self,
        *,
        system: str,
        base_url: str,
        token: str,
        timeout: httpx.Timeout,
        retry: RetryPolicy = RetryPolicy(),
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 100,
    ) -> None:
        self.system = system
        self.retry = retry
        self._base_url = base_url.rstrip("/")
        self._aiohttp_headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self._headers = httpx.Headers(self._aiohttp_headers)
        self._extensions = {"timeout": timeout.as_dict()}
        self._session: aiohttp.ClientSession | None = None
        self._max_connections = max_connections
        self._direct = transport is None  # get_json may skip the httpx objects
        self._made_transport = transport  # the default one is made on first use (``_transport``)
        # what the transport derives per request from the timeout extension, derived once
        self._aiohttp_timeout = aiohttp.ClientTimeout(
            sock_connect=timeout.connect, sock_read=timeout.read, connect=timeout.pool
        )

    @property
    def _transport(self) -> httpx.AsyncBaseTransport:
        """The transport of ``request``; the default one made when first needed: making it reads
        the CA bundle into a TLS context (about 25 ms of CPU per process), which ``get_json``, a
        sync worker's only call, never uses."""
        if self._made_transport is None:
            self._made_transport = AiohttpTransport(client=self._aiohttp)
        return self._made_transport

    def _aiohttp(self) -> aiohttp.ClientSession:
        """The one aiohttp session (pool) of the default transport and of ``get_json``."""
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def aclose(self) -> None:
        if self._made_transport is not None:
            await self._made_transport.aclose()
        if self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> UpstreamClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json_body: Any = None,
        idempotent: bool | None = None,
        attempts: int | None = None,
    ) -> httpx.Response:
        """Send one request; retry unavailability only when the call is idempotent, up to
        ``attempts`` tries in all (default: the policy's), e.g. 1 for a circuit's probe."""
        if idempotent is None:
            idempotent = method.upper() in {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}
        attempts = (attempts or self.retry.attempts) if idempotent else 1
        return await self._retrying(
            attempts, partial(self._send_once, method, path, params, json_body)
        )

    async def get_json(
        self, path: str, *, params: dict[str, str] | None = None, attempts: int | None = None
    ) -> Any:
        """GET and decode a JSON body; a body that is not JSON is an invalid payload."""
        return _loads(self.system, await self.get_body(path, params=params, attempts=attempts))

    async def get_body(
        self, path: str, *, params: dict[str, str] | None = None, attempts: int | None = None
    ) -> bytes:
        """GET a body (the status checked, as ``request`` does), for a caller that decodes it
        itself; on the aiohttp session directly, without httpx's request and response objects,
        unless a transport was given. ``attempts`` as in ``request``."""
        if not self._direct:
            return (await self.request("GET", path, params=params, attempts=attempts)).content
        tries = attempts or self.retry.attempts
        return await self._retrying(tries, partial(self._get_once, path, params))

    async def _retrying(self, attempts: int, call: Callable[[], Awaitable[T]]) -> T:
        """``call``, tried again after unavailability up to ``attempts`` times in all; not
        after a timeout: a system too slow to answer is asked again by the caller's backoff,
        and retrying at once multiplied a waiting user's time (3 x 6 s before a lookup's 503)."""
        for attempt in range(attempts):
            try:
                return await call()
            except UpstreamUnavailable as exc:
                if attempt + 1 >= attempts or exc.timed_out:
                    raise
                await asyncio.sleep(self.retry.delay(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _get_once(self, path: str, params: dict[str, str] | None) -> bytes:
        """``_send_once`` for a GET, on the aiohttp session itself: the body, or the error."""
        start = time.perf_counter()
        outcome = "error"
        try:
            try:
                with map_aiohttp_exceptions():  # aiohttp's errors as the transport reports them
                    async with self._aiohttp().get(
                        self._base_url + path,
                        params=params,
                        headers=self._aiohttp_headers,
                        timeout=self._aiohttp_timeout,
                        allow_redirects=False,
                    ) as response:
                        status, body = response.status, await response.read()
            except httpx.TransportError as exc:
                outcome, error = _unavailable(self.system, exc)
                raise error from exc
            outcome = str(status)
            _raise_for_status(self.system, status, body)
            return body
        finally:
            self._observe(start, outcome, "GET", path)

    async def _send_once(
        self, method: str, path: str, params: dict[str, str] | None, json_body: Any
    ) -> httpx.Response:
        start = time.perf_counter()
        outcome = "error"
        request = httpx.Request(
            method,
            self._base_url + path,
            params=params,
            json=json_body,
            headers=self._headers,
            extensions=self._extensions,
        )
        try:
            try:
                response = await self._transport.handle_async_request(request)
                try:
                    await response.aread()
                finally:
                    await response.aclose()
            except httpx.TransportError as exc:
                outcome, error = _unavailable(self.system, exc)
                raise error from exc
            outcome = str(response.status_code)
            _raise_for_status(self.system, response.status_code, response.content)
            return response
        finally:
            self._observe(start, outcome, method, path)

    def _observe(self, start: float, outcome: str, method: str, path: str) -> None:
        """Metrics and the log line of one call."""
        elapsed = time.perf_counter() - start
        UPSTREAM_REQUESTS.labels(self.system, outcome).inc()
        UPSTREAM_SECONDS.labels(self.system).observe(elapsed)
        if logger.isEnabledFor(logging.INFO):  # redact() is not free: skip it when unlogged
            logger.info(
                "%s %s %s -> %s in %.1f ms",
                self.system,
                method,
                redact(path),
                outcome,
                elapsed * 1000,
                extra={"action": "upstream_call", "system": self.system, "outcome": outcome},
            )


def _unavailable(system: str, exc: httpx.TransportError) -> tuple[str, UpstreamUnavailable]:
    """The outcome and the error of a call that could not reach the system or timed out."""
    if isinstance(exc, httpx.TimeoutException) and not _refused(exc):
        error = UpstreamUnavailable(f"{system} timed out ({type(exc).__name__})", timed_out=True)
        return "timeout", error
    cause = exc.__cause__ if isinstance(exc, httpx.TimeoutException) else exc
    return "unreachable", UpstreamUnavailable(
        f"{system} could not be reached ({type(cause).__name__})"
    )


def _refused(exc: httpx.TimeoutException) -> bool:
    """aiohttp's transport reports a refused or dropped connection as a connect *timeout*."""
    cause = exc.__cause__
    return isinstance(cause, aiohttp.ClientConnectionError) and not isinstance(
        cause, asyncio.TimeoutError | aiohttp.ServerTimeoutError
    )


def _raise_for_status(system: str, status: int, body: bytes) -> None:
    if status < 400:
        return
    answer = redact(body[:800].decode("utf-8", "replace")).strip()  # a client may parse it
    detail = answer[:200]
    if status == 404:
        raise UpstreamNotFound(f"{system} does not know this object (404): {detail}", answer=answer)
    if status in (408, 429) or status >= 500:
        raise UpstreamUnavailable(f"{system} failed with HTTP {status}: {detail}", answer=answer)
    message = f"{system} rejected the request with HTTP {status}: {detail}"
    raise UpstreamRejected(message, answer=answer, http_status=status)


def decode_json(system: str, response: httpx.Response) -> Any:
    """The response body as JSON, or ``UpstreamInvalidPayload``."""
    return _loads(system, response.content)


def _loads(system: str, body: bytes) -> Any:
    try:
        return json.loads(body)  # what httpx's Response.json() does
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UpstreamInvalidPayload(f"{system} answered with a body that is not JSON") from exc


__all__ = ["RetryPolicy", "UpstreamClient", "UpstreamError", "decode_json"]
