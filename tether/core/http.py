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
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
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
        self._headers = httpx.Headers(
            {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        )
        self._extensions = {"timeout": timeout.as_dict()}
        self._transport = transport or AiohttpTransport(
            client=lambda: aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=max_connections)
            )
        )

    async def aclose(self) -> None:
        await self._transport.aclose()

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
    ) -> httpx.Response:
        """Send one request; retry unavailability only when the call is idempotent."""
        if idempotent is None:
            idempotent = method.upper() in {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}
        attempts = self.retry.attempts if idempotent else 1
        for attempt in range(attempts):
            try:
                return await self._send_once(method, path, params, json_body)
            except UpstreamUnavailable:
                if attempt + 1 >= attempts:
                    raise
                await asyncio.sleep(self.retry.delay(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    async def get_json(self, path: str, *, params: dict[str, str] | None = None) -> Any:
        """GET and decode a JSON body; a body that is not JSON is an invalid payload."""
        return decode_json(self.system, await self.request("GET", path, params=params))

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
            except httpx.TimeoutException as exc:
                if _refused(exc):
                    outcome = "unreachable"
                    raise UpstreamUnavailable(
                        f"{self.system} could not be reached ({type(exc.__cause__).__name__})"
                    ) from exc
                outcome = "timeout"
                raise UpstreamUnavailable(
                    f"{self.system} timed out ({type(exc).__name__})"
                ) from exc
            except httpx.TransportError as exc:
                outcome = "unreachable"
                raise UpstreamUnavailable(
                    f"{self.system} could not be reached ({type(exc).__name__})"
                ) from exc
            outcome = str(response.status_code)
            _raise_for_status(self.system, response)
            return response
        finally:
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


def _refused(exc: httpx.TimeoutException) -> bool:
    """aiohttp's transport reports a refused or dropped connection as a connect *timeout*."""
    cause = exc.__cause__
    return isinstance(cause, aiohttp.ClientConnectionError) and not isinstance(
        cause, asyncio.TimeoutError | aiohttp.ServerTimeoutError
    )


def _raise_for_status(system: str, response: httpx.Response) -> None:
    status = response.status_code
    if status < 400:
        return
    detail = redact(response.text[:200]).strip()
    if status == 404:
        raise UpstreamNotFound(f"{system} does not know this object (404): {detail}")
    if status in (408, 429) or status >= 500:
        raise UpstreamUnavailable(f"{system} failed with HTTP {status}: {detail}")
    raise UpstreamRejected(f"{system} rejected the request with HTTP {status}: {detail}")


def decode_json(system: str, response: httpx.Response) -> Any:
    """The response body as JSON, or ``UpstreamInvalidPayload``."""
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UpstreamInvalidPayload(f"{system} answered with a body that is not JSON") from exc


__all__ = ["RetryPolicy", "UpstreamClient", "UpstreamError", "decode_json"]
