"""Reference data operators manage (API and CLI), and the policy for an unknown party."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tether.accountingpoints import parties
from tether.accountingpoints.service import AccountingPointService
from tether.accountingpoints.settings import AccountingPointSettings
from tether.accountingpoints.simulator import start_simulator
from tether.accountingpoints.tasks import run_worker
from tether.core.settings import Settings

from .conftest import TOKEN, Sim, seed_never_synced, sql

SUPPLIERS = "/api/v1/reference/energy-suppliers"
GRID_AREAS = "/api/v1/reference/grid-areas"


@pytest.fixture
def sim() -> Iterator[Sim]:
    server, hub = start_simulator(count=6, seed=13, token=TOKEN)
    yield server, hub
    server.stop()


@pytest.fixture
def api(db_url: str, sim: Sim, tmp_path: Path, start_api: Any) -> httpx.Client:
    settings = Settings(database_url=db_url, data_dir=tmp_path / "data", db_pool_max=4)  # type: ignore[call-arg]
    ap = AccountingPointSettings(adapter_url=sim[0].url, adapter_token=TOKEN, adapter_retries=0)
    client: httpx.Client = start_api(settings, overrides=[ap])
    return client


def test_operators_list_add_and_retire_parties(api: httpx.Client) -> None:
    seeded = api.get(SUPPLIERS).json()
    assert seeded and all(p["verified"] and p["retired_at"] is None for p in seeded)
    added = api.post(SUPPLIERS, json=[{"business_id": "7080000000001", "name": "New Kraft"}])
    assert added.status_code == 200, added.text
    assert "7080000000001" in [p["business_id"] for p in api.get(SUPPLIERS).json()]

    retired = api.post(f"{SUPPLIERS}/7080000000001/retire")
    assert retired.status_code == 200 and retired.json()["retired_at"] is not None
    assert "7080000000001" not in [p["business_id"] for p in api.get(SUPPLIERS).json()]
    everything = api.get(SUPPLIERS, params={"include_retired": "true"}).json()
    assert "7080000000001" in [p["business_id"] for p in everything]

    bad = api.post(GRID_AREAS, json=[{"business_id": "7080000000001", "name": "not an EIC"}])
    assert bad.status_code == 422 and "EIC-Y" in bad.text
    missing = api.post(f"{GRID_AREAS}/10YNO-9--------X/retire")
    assert missing.status_code == 404
    assert api.get("/api/v1/reference/planets").status_code == 422
    assert httpx.get(f"{api.base_url}{SUPPLIERS}").status_code == 401  # needs a credential


def test_an_unknown_supplier_is_a_409_with_a_reason(
    api: httpx.Client, sim: Sim, db_url: str
) -> None:
    _, hub = sim
    gsrn = hub.gsrns[0]
    record = hub.record(gsrn)
    assert record is not None
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "DELETE FROM ap.energy_supplier WHERE business_id = ANY(%s)",
            ([s["business_id"] for s in record["energy_supplier"]],),
        )
    response = api.post("/api/v1/controllable-units", json={"name": "x", "accounting_point": gsrn})
    assert response.status_code == 409, response.text
    assert response.json()["reason"] == "unknown_reference"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"unknown_party": "accept_unverified"}


async def test_accept_unverified_stores_the_unknown_party_flagged(
    service: AccountingPointService, sim: Sim
) -> None:
    _, hub = sim
    gsrn = hub.gsrns[1]
    record = hub.record(gsrn)
    assert record is not None
    ids = [s["business_id"] for s in record["energy_supplier"]]
    await sql(service, "DELETE FROM ap.energy_supplier WHERE business_id = ANY(%s)", ids)
    await seed_never_synced(service, [gsrn])
    stats = await run_worker(service, stop=asyncio.Event(), once=True)
    assert stats.outcomes == {"ok": 1}
    known = {
        p.business_id: p
        for p in await parties.list_parties(service.pool, parties.PartyKind.ENERGY_SUPPLIERS)
    }
    assert all(not known[i].verified for i in ids)


def test_the_cli_loads_a_csv_all_or_nothing(db_url: str, tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": db_url, "TETHER_DATA_DIR": str(tmp_path)}
    run = [sys.executable, "-m", "tether", "accounting-points", "grid-areas"]
    good = tmp_path / "areas.csv"
    good.write_text("business_id,name\n10YNO-9--------1,Test Area\n50Y-NO9-TESTA--1,Another\n")
    loaded = subprocess.run([*run, "load", str(good)], capture_output=True, text=True, env=env)
    assert loaded.returncode == 0, loaded.stderr
    assert "loaded 2 grid-areas" in loaded.stdout
    listed = subprocess.run([*run, "list"], capture_output=True, text=True, env=env)
    assert "10YNO-9--------1  Test Area" in listed.stdout

    bad = tmp_path / "bad.csv"
    bad.write_text("10YNO-9--------2,Fine\nnot-an-eic,Broken\n")
    refused = subprocess.run([*run, "load", str(bad)], capture_output=True, text=True, env=env)
    assert refused.returncode != 0 and "row 2" in refused.stderr
    after = subprocess.run([*run, "list"], capture_output=True, text=True, env=env)
    assert "10YNO-9--------2" not in after.stdout  # nothing of a refused file is stored


def test_the_cli_refuses_a_file_that_is_not_utf8_in_one_line(db_url: str, tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": db_url, "TETHER_DATA_DIR": str(tmp_path)}
    run = [sys.executable, "-m", "tether", "accounting-points", "suppliers"]
    lat = tmp_path / "lat.csv"
    lat.write_bytes("7080000000001,Fine\n7080000000002,Hafslund Strøm\n".encode("latin-1"))
    refused = subprocess.run([*run, "load", str(lat)], capture_output=True, text=True, env=env)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"error: {lat} is not UTF-8 (byte 0xf8 at offset 45): save it as UTF-8"
    )
    listed = subprocess.run([*run, "list"], capture_output=True, text=True, env=env)
    assert "7080000000001" not in listed.stdout  # nothing of the file is stored
