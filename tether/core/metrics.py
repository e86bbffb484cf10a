"""Prometheus exposition shared by the API (``/metrics``) and the workers."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response


def metrics_response() -> Response:
    """The default registry in Prometheus text format."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
