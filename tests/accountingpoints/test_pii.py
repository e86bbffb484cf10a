"""Person ids are stored only as keyed hashes, checked before anything is stored, shown masked."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tether.accountingpoints import pii
from tether.accountingpoints.errors import EndUserMismatch
from tether.accountingpoints.service import AccountingPointService, build
from tether.accountingpoints.simulator import Datahub, start_simulator
from tether.accountingpoints.tasks import run_worker
from tether.core.bootstrap import open_runtime

from .conftest import EARLY, TOKEN, Sim, core_settings, make_settings, sql

OSLO = ZoneInfo("Europe/Oslo")
KEY = b"dev-pii-key"  # the default of TETHER_AP_PII_KEY, which make_settings leaves alone
CLEAR_IDS = (
    "SELECT count(*) AS n FROM ap.end_user WHERE business_id ~ '^[0-9]{11}$' "
    "OR business_id = ANY(%s)"
)


@pytest.fixture
def sim() -> Iterator[Sim]:
    server, hub = start_simulator(count=40, seed=7, token=TOKEN)
    yield server, hub
    server.stop()


def current_end_user(hub: Datahub, gsrn: str) -> str | None:
    record = hub.record(gsrn)
    assert record is not None
    now = datetime.now(OSLO)
    for p in record["end_user"]:
        start, end = datetime.fromisoformat(p["valid_from"]), p["valid_to"]
        if start <= now and (end is None or datetime.fromisoformat(end) > now):
            return str(p["business_id"])
    return None


def person_aps(hub: Datahub) -> list[str]:
    """APs whose current end user is a person (11 digits)."""
    return [g for g in hub.gsrns if len(current_end_user(hub, g) or "") == 11]


def all_person_ids(hub: Datahub) -> list[str]:
    ids = []
    for g in hub.gsrns:
        record = hub.record(g)
        assert record is not None
        ids += [p["business_id"] for p in record["end_user"] if len(p["business_id"]) == 11]
    return ids


async def test_synced_person_ids_are_stored_as_keyed_hashes_only(
    service: AccountingPointService, sim: Sim
) -> None:
    _, hub = sim
    chosen = person_aps(hub)[:3]
    assert chosen
    for gsrn in chosen:
        await service.register_controllable_unit(gsrn=gsrn, name="battery", start_date=EARLY)
    await run_worker(service, stop=asyncio.Event(), once=True)
    [clear] = await sql(service, CLEAR_IDS, all_person_ids(hub))
    assert clear["n"] == 0
    for gsrn in chosen:
        person = current_end_user(hub, gsrn)
        assert person is not None
        _, timelines, _ = await service.get(gsrn)
        stored = [t["value"] for t in timelines if t["kind"] == "end_user"]
        assert pii.pseudonym(person, KEY) in stored
        assert pii.pseudonym(person, b"another key") not in stored  # keyed, not a plain hash
        found = await service.lookup(end_user=person, gsrn=gsrn)  # compared by hash
        assert found.accounting_point["gsrn"] == gsrn


async def test_a_stranger_s_lookup_stores_nothing(
    service: AccountingPointService, sim: Sim
) -> None:
    _, hub = sim
    gsrn = person_aps(hub)[0]
    with pytest.raises(EndUserMismatch):
        await service.lookup(end_user="987654321", gsrn=gsrn)
    held = await sql(service, "SELECT count(*) AS n FROM ap.accounting_point WHERE gsrn = %s", gsrn)
    assert held[0]["n"] == 0
    [users] = await sql(service, "SELECT count(*) AS n FROM ap.end_user")
    assert users["n"] == 0


async def test_an_accounting_point_without_a_unit_keeps_no_person(
    service: AccountingPointService, sim: Sim
) -> None:
    server, hub = sim
    gsrn = person_aps(hub)[1]
    person = current_end_user(hub, gsrn)
    assert person is not None
    for _ in range(2):  # each lookup checks against a fresh answer, since nothing is kept
        found = await service.lookup(end_user=person, gsrn=gsrn)
        assert found.controllable_units == []
    assert server.state.calls[gsrn] == 2
    [users] = await sql(service, "SELECT count(*) AS n FROM ap.end_user WHERE business_id ~ '^h'")
    assert users["n"] == 0

    await service.register_controllable_unit(gsrn=gsrn, name="heat pump")
    _, timelines, units = await service.get(gsrn)
    assert units and pii.pseudonym(person, KEY) in [t["value"] for t in timelines]


async def test_the_service_converts_person_ids_stored_in_clear(
    db_url: str, sim: Sim, tmp_path: Path, service: AccountingPointService
) -> None:
    """Rows from before migration 0006 are hashed when a service starts with the key."""
    person, org = "01017012345", "912345678"
    await sql(service, "ALTER TABLE ap.end_user DROP CONSTRAINT end_user_business_id_check")
    await sql(
        service,
        "INSERT INTO ap.end_user (business_id, entity_type) "
        "VALUES (%s, 'person'), (%s, 'organisation')",
        person,
        org,
    )
    await sql(
        service,
        "ALTER TABLE ap.end_user ADD CONSTRAINT end_user_business_id_check CHECK "
        "(business_id ~ '^[1-9][0-9]{8}$|^hmac:[0-9a-f]{64}$') NOT VALID",
    )
    key = "a-real-pii-key-of-32-characters!"
    settings = make_settings(sim[0], pii_key=key)
    runtime_cm = open_runtime(
        core_settings(db_url, tmp_path), database_url=db_url, overrides=[settings]
    )
    async with runtime_cm as runtime, build(runtime):
        pass
    rows = await sql(service, "SELECT business_id FROM ap.end_user ORDER BY entity_type")
    assert [r["business_id"] for r in rows] == [org, pii.pseudonym(person, key.encode())]
    # and the database itself refuses a clear person id from now on
    with pytest.raises(Exception, match="end_user_business_id_check"):
        await sql(service, "INSERT INTO ap.end_user (business_id) VALUES ('02027012345')")


def test_masking_keeps_organisations_readable() -> None:
    assert pii.masked(pii.pseudonym("01017012345", KEY)) == "*" * 11
    assert pii.masked("912345678") == "912345678"
    assert pii.pseudonym("912345678", KEY) == "912345678"
