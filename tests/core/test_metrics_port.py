"""The worker's metrics port answers its caller whatever the credential check meets: with the
database down it was wsgiref's 500 page and a raw traceback in the worker's log."""

from __future__ import annotations

import socket

import httpx
import psycopg

from tether.core.metrics import children_metrics


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_metrics_port_is_503_while_the_credential_cannot_be_checked() -> None:
    def database_down(header: str) -> bool:
        raise psycopg.OperationalError("connection failed: Connection refused")

    port = _free_port()
    with children_metrics("127.0.0.1", port, authorized=database_down):
        answer = httpx.get(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": "x"})
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    assert "database is unavailable" in answer.text


def test_the_metrics_port_wants_a_credential_it_accepts() -> None:
    port = _free_port()
    with children_metrics("127.0.0.1", port, authorized=lambda header: header == "Bearer ok"):
        refused = httpx.get(f"http://127.0.0.1:{port}/metrics")
        served = httpx.get(
            f"http://127.0.0.1:{port}/metrics", headers={"Authorization": "Bearer ok"}
        )
    assert refused.status_code == 401 and served.status_code == 200
