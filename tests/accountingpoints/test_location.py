"""A location is both coordinates or none: a lone coordinate is stored as unknown, flagged and
counted, and never holds back or fails the other APs of its batch.

Real Postgres, the datahub simulator over HTTP (its ``partial_location`` fault mode drops the
longitude of every answer), the real service, worker loop and console panel.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from tether.accountingpoints import console
from tether.accountingpoints.service import AccountingPointService
from tether.accountingpoints.simulator import DatahubFault, start_simulator
from tether.accountingpoints.tasks import run_worker

from .conftest import TOKEN, Sim, seed_never_synced, sql

COUNT = 16


@pytest.fixture
def sim() -> Iterator[Sim]:
    server, hub = start_simulator(count=COUNT, seed=23, token=TOKEN)
    yield server, hub
    server.stop()


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"adapter_timeout_s": 2.0, "claim_batch": 100}  # the whole set in one batch


def partial_count() -> float:
    return REGISTRY.get_sample_value("tether_ap_partial_locations_total") or 0.0


async def locations(service: AccountingPointService) -> dict[str, dict[str, Any]]:
    rows = await sql(
        service,
        "SELECT a.gsrn, a.latitude, a.longitude, s.location_partial, s.last_error_reason, "
        "s.version FROM ap.accounting_point a "
        "JOIN ap.accounting_point_sync s ON s.accounting_point_id = a.id",
    )
    return {r.pop("gsrn"): r for r in rows}


async def sync_all(service: AccountingPointService) -> dict[str, int]:
    await sql(service, "UPDATE ap.accounting_point_sync SET next_sync_at = now()")
    stats = await run_worker(service, stop=asyncio.Event(), once=True)
    return dict(stats.outcomes)


async def gauge(service: AccountingPointService) -> float:
    """``tether_ap_location_partial`` as ``/metrics`` exports it (the console panel's gauge)."""
    async with service.pool.connection() as conn:
        cur = await conn.execute(
            console.queries["sync_overview"], {"examples": 5, "circuit": service.breaker.name}
        )
        row = await cur.fetchone()
    assert row is not None
    panel = console.build_panel(row, service)
    [value] = [g.value for g in panel.gauges if g.name == "tether_ap_location_partial"]
    return value


async def test_a_lone_coordinate_is_stored_as_unknown_flagged_and_counted(
    service: AccountingPointService, sim: Sim
) -> None:
    server, hub = sim
    await seed_never_synced(service, hub.gsrns)
    assert await sync_all(service) == {"ok": COUNT}
    whole = await locations(service)
    located = {g for g, r in whole.items() if r["latitude"] is not None}
    assert located and located != set(hub.gsrns)  # some answers carry no location at all
    assert not any(r["location_partial"] for r in whole.values())
    history_before = await sql(service, "SELECT count(*) AS n FROM ap.accounting_point_history")

    server.set_mode(DatahubFault.PARTIAL_LOCATION)
    counted = partial_count()
    assert await sync_all(service) == {"ok": COUNT}  # no AP of the batch fails or waits
    half = await locations(service)
    for gsrn, row in half.items():
        if gsrn in located:  # latitude alone: unknown, flagged
            assert (row["latitude"], row["longitude"], row["location_partial"]) == (
                None,
                None,
                True,
            )
        else:  # no coordinate at all: not partial, nothing changes
            assert row["location_partial"] is False
            assert (row["latitude"], row["longitude"]) == (None, None)
        assert row["last_error_reason"] is None
        assert row["version"] == whole[gsrn]["version"] + 1
    assert partial_count() - counted == len(located)
    assert await gauge(service) == len(located)
    # the old place is kept in history, not in the current row
    history = await sql(service, "SELECT count(*) AS n FROM ap.accounting_point_history")
    assert history[0]["n"] - history_before[0]["n"] == len(located)
    ap, _, _ = await service.get(sorted(located)[0])
    assert ap["location_partial"] is True

    server.set_mode(DatahubFault.NONE)
    assert await sync_all(service) == {"ok": COUNT}
    again = await locations(service)
    for gsrn, row in again.items():
        assert (row["latitude"], row["longitude"]) == (
            whole[gsrn]["latitude"],
            whole[gsrn]["longitude"],
        )
        assert row["location_partial"] is False
    assert await gauge(service) == 0


async def test_partial_and_bad_answers_in_one_batch_fail_only_themselves(
    service: AccountingPointService, sim: Sim
) -> None:
    _, hub = sim
    records = {g: hub.record(g) for g in hub.gsrns}
    located = [g for g, r in records.items() if r and "latitude" in r]
    assert len(located) >= 2
    partial, unknown_supplier = located[0], located[1]
    record = records[partial]
    assert record is not None
    hub.put(partial, {k: v for k, v in record.items() if k != "longitude"})
    bad = records[unknown_supplier]
    assert bad is not None
    bad_supplier = [{**p, "business_id": "7080000000001"} for p in bad["energy_supplier"]]
    hub.put(unknown_supplier, {**bad, "energy_supplier": bad_supplier})
    await seed_never_synced(service, hub.gsrns)

    claims = await service.claim_due(limit=1000, worker="w")
    assert len(claims) == COUNT
    outcomes = {o.gsrn: o for o in await service.sync_batch(claims)}
    assert outcomes[unknown_supplier].reason == "unknown_reference"
    assert [g for g, o in outcomes.items() if not o.ok] == [unknown_supplier]
    stored = await locations(service)
    assert stored[partial]["location_partial"] is True
    assert (stored[partial]["latitude"], stored[partial]["longitude"]) == (None, None)
    for gsrn in set(located) - {partial, unknown_supplier}:
        assert stored[gsrn]["latitude"] == records[gsrn]["latitude"]  # type: ignore[index]
        assert stored[gsrn]["location_partial"] is False
