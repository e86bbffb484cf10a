"""Per-request work the API no longer does (measured by callgrind on the payments intake)."""

from __future__ import annotations

import httpx
import pytest
from opentelemetry import _logs as otel_logs
from opentelemetry import metrics as otel_metrics
from opentelemetry import trace as otel_trace

from tether.app import create_app
from tether.core.settings import Settings


async def test_a_request_asks_opentelemetry_for_no_provider(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FastAPI's native telemetry is off: tether installs no OpenTelemetry SDK, and asking for
    the three global providers on every request cost 1 % of the intake's CPU."""

    def asked() -> None:
        raise AssertionError("a request asked OpenTelemetry for a provider")

    monkeypatch.setattr(otel_trace, "get_tracer_provider", asked)
    monkeypatch.setattr(otel_metrics, "get_meter_provider", asked)
    monkeypatch.setattr(otel_logs, "get_logger_provider", asked)
    transport = httpx.ASGITransport(app=create_app(settings))  # no lifespan: no database
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.get("/no/such/page", headers={"Accept": "application/json"})
    assert answer.status_code == 404
