"""``tether serve`` and ``tether worker`` as processes: one JSON log pipeline (uvicorn's lines
included, person ids masked) and refusal to run exposed with development secrets."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest
from pydantic import SecretStr

from tether.accountingpoints.settings import AccountingPointSettings
from tether.cli import all_settings
from tether.core import exposure, keys
from tether.core.errors import ConfigurationError
from tether.core.settings import Settings
from tether.payments.settings import PaymentsSettings

STRONG = "x" * 24
PERSON_ID = "12345678901"


def env(**extra: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **extra}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_serving(client: httpx.Client) -> None:
    """Until the server answers (it starts in a subprocess), at most about 30 s."""
    for _ in range(300):
        try:
            client.get("/healthz")
            return
        except httpx.TransportError:
            time.sleep(0.1)


def test_serve_logs_uvicorn_and_access_lines_as_masked_json(db_url: str) -> None:
    port = free_port()
    _, secret = keys.create(db_url, "log test", ["read"])
    proc = subprocess.Popen(
        [sys.executable, "-m", "tether", "serve", "--port", str(port)],
        env=env(DATABASE_URL=db_url, TETHER_LOG_JSON="true"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            wait_serving(client)
            missing = client.get(
                f"/api/v1/accounting-points/{PERSON_ID}",
                headers={"Authorization": f"Bearer {secret}"},
            )
            assert missing.status_code == 422  # a person id is no GSRN
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]  # all JSON
    loggers = {line["logger"] for line in lines}
    assert {"uvicorn.error", "uvicorn.access"} <= loggers, loggers
    access = [line["message"] for line in lines if line["logger"] == "uvicorn.access"]
    assert any("/api/v1/accounting-points/<HIDDEN>" in m and "422" in m for m in access)
    assert PERSON_ID not in stderr and secret not in stderr


@pytest.mark.parametrize(
    ("command", "extra"),
    [
        (["serve", "--host", "0.0.0.0"], {}),
        (["worker", "--once"], {"DATABASE_URL": "postgresql://tether@db.internal:5432/tether"}),
    ],
    ids=["serve on 0.0.0.0", "worker with a remote database"],
)
def test_exposed_processes_refuse_development_secrets(
    command: list[str], extra: dict[str, str]
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tether", *command],
        env=env(TETHER_DATA_DIR="/nonexistent/never-used", **extra),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "refusing to start" in result.stderr and "Traceback" not in result.stderr
    assert "TETHER_AP_ADAPTER_TOKEN" in result.stderr and "TETHER_ELICENSING_TOKEN" in result.stderr
    assert "TETHER_AP_PII_KEY" in result.stderr and "TETHER_PAYMENTS_OPPDRAG_TOKEN" in result.stderr
    if command[0] == "serve":
        assert "TETHER_EVENTS_TOKEN" in result.stderr and "TETHER_SESSION_SECRET" in result.stderr


def test_which_secrets_and_addresses_count() -> None:
    dev = all_settings(Settings())  # core and every capability's, as serve and worker check
    assert sorted(name for s in dev for name in exposure.weak_secrets(s)) == [
        "TETHER_AP_ADAPTER_TOKEN",
        "TETHER_AP_PII_KEY",
        "TETHER_ELICENSING_TOKEN",
        "TETHER_EVENTS_TOKEN",
        "TETHER_PAYMENTS_OPPDRAG_TOKEN",
        "TETHER_SESSION_SECRET",
    ]
    exposure.refuse_unsafe(*dev, bind_host="127.0.0.1")  # local development: fine
    exposure.refuse_unsafe(*dev, bind_host="::1")
    exposure.refuse_unsafe(*dev, bind_host="localhost")
    strong = [s.model_copy(update=exposure.random_secrets(s)) for s in dev]
    exposure.refuse_unsafe(*strong, bind_host="0.0.0.0")  # production with real secrets: fine
    short = [strong[0].model_copy(update={"events_token": SecretStr("short")}), *strong[1:]]
    with pytest.raises(ConfigurationError, match="TETHER_EVENTS_TOKEN"):
        exposure.refuse_unsafe(*short, bind_host="10.0.0.5")
    remote_db = Settings(database_url="host=db.internal dbname=t")
    with pytest.raises(ConfigurationError, match="DATABASE_URL is not loopback"):
        exposure.refuse_unsafe(remote_db)
    remote_adapter = AccountingPointSettings(adapter_url="https://adapter.example/api")
    with pytest.raises(ConfigurationError, match="TETHER_AP_ADAPTER_URL is not loopback"):
        exposure.refuse_unsafe(remote_adapter)
    remote_oppdrag = PaymentsSettings(oppdrag_url="https://oppdrag.example")
    with pytest.raises(ConfigurationError, match="TETHER_PAYMENTS_OPPDRAG_TOKEN"):
        exposure.refuse_unsafe(remote_oppdrag)  # it was a plain string, never checked
    assert "dev-oppdrag-token" not in repr(remote_oppdrag)
    assert exposure.is_loopback("/run/postgresql") and not exposure.is_loopback("0.0.0.0")


def test_serve_with_two_workers_answers_from_two_processes(db_url: str) -> None:
    import psutil

    port = free_port()
    _, secret = keys.create(db_url, "workers test", ["read"])
    proc = subprocess.Popen(
        [sys.executable, "-m", "tether", "serve", "--port", str(port), "--workers", "2"],
        env=env(DATABASE_URL=db_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            wait_serving(client)
            auth = {"Authorization": f"Bearer {secret}"}
            for _ in range(10):  # every process checks the key (each has its own cache)
                assert (
                    client.get(f"/api/v1/accounting-points/{PERSON_ID}", headers=auth).status_code
                    == 422  # a person id is no GSRN
                )
        children = psutil.Process(proc.pid).children()
        assert len([c for c in children if "spawn" in " ".join(c.cmdline())]) == 2
    finally:
        proc.terminate()
        proc.wait(timeout=30)
