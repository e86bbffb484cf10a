"""The batched sync: many adapter answers merged in one transaction by ``ap.apply_sync_batch``.

Real Postgres, the datahub simulator over HTTP, the real service. What is checked: a batch stores
exactly what syncing each AP on its own stores (rows and history), one bad item fails only
itself, and the worker's two apply modes end in the same state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tether.accountingpoints.models import Claim
from tether.accountingpoints.service import AccountingPointService
from tether.accountingpoints.simulator import ChangeKind, Datahub, start_simulator
from tether.accountingpoints.tasks import run_worker

from .conftest import TOKEN, Sim, seed_never_synced, sql

COUNT = 40


@pytest.fixture
def sim() -> Iterator[Sim]:
    server, hub = start_simulator(count=COUNT, seed=11, token=TOKEN)
    yield server, hub
    server.stop()


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"adapter_timeout_s": 2.0}  # 40 fetches at once: no time-outs wanted here


async def claims(service: AccountingPointService, worker: str) -> list[Claim]:
    return await service.claim_due(limit=1000, worker=worker)


async def stored(service: AccountingPointService, gsrns: list[str]) -> dict[str, Any]:
    """Everything stored of these APs that does not depend on when or by whom it was written."""
    rows = await sql(
        service,
        "SELECT a.gsrn, a.latitude, a.longitude, s.version, s.last_error_reason, "
        "s.last_synced_at IS NOT NULL AS synced FROM ap.accounting_point a "
        "JOIN ap.accounting_point_sync s ON s.accounting_point_id = a.id "
        "WHERE a.gsrn = ANY(%s)",
        gsrns,
    )
    out: dict[str, Any] = {r.pop("gsrn"): r for r in rows}
    for gsrn in gsrns:
        _, timelines, _ = await service.get(gsrn)
        out[gsrn]["timelines"] = sorted(
            (t["kind"], t["valid_from"], t["valid_to"], t["value"]) for t in timelines
        )
        history = await service.history(gsrn)
        out[gsrn]["history"] = sorted(
            (h["kind"], h["valid_from"], h["valid_to"], h["value"], h["history_operation"])
            for h in history
        )
    return out


def mutate_every_kind(hub: Datahub, gsrns: list[str]) -> None:
    kinds = list(ChangeKind)
    for n, gsrn in enumerate(gsrns):
        hub.mutate(gsrn, kinds[n % len(kinds)])


async def test_a_batch_stores_exactly_what_one_by_one_syncs_store(
    service: AccountingPointService, sim: Sim
) -> None:
    server, hub = sim
    together, alone = hub.gsrns[: COUNT // 2], hub.gsrns[COUNT // 2 :]
    # the same answers for both halves, so their stored states can be compared
    for a, b in zip(together, alone, strict=True):
        record = hub.record(a)
        assert record is not None
        hub.put(b, {**record, "gsrn": b})
    await seed_never_synced(service, hub.gsrns)

    for round_ in range(2):
        if round_:
            mutate_every_kind(hub, together)
            for a, b in zip(together, alone, strict=True):
                record = hub.record(a)
                assert record is not None
                hub.put(b, {**record, "gsrn": b})
            await sql(service, "UPDATE ap.accounting_point_sync SET next_sync_at = now()")
        claimed = await claims(service, "w")
        batch = [c for c in claimed if c.gsrn in together]
        one_by_one = [c for c in claimed if c.gsrn in alone]
        assert len(batch) == len(one_by_one) == COUNT // 2
        assert all(o.ok for o in await service.sync_batch(batch))
        for claim in one_by_one:
            assert (await service.sync_batch([claim]))[0].ok

    left, right = await stored(service, together), await stored(service, alone)
    for a, b in zip(together, alone, strict=True):
        assert left[a] == right[b], a
        assert left[a]["version"] == 2 and left[a]["synced"]
    # the second round changed every AP, and every kind of change left history
    history_kinds = {h[0] for s in left.values() for h in s["history"]}
    assert {"end_user", "energy_supplier", "metering_grid_area"} <= history_kinds
    assert sum(server.state.calls[g] for g in hub.gsrns) == 2 * COUNT


async def test_one_bad_answer_in_a_batch_fails_only_its_own_accounting_point(
    service: AccountingPointService, sim: Sim
) -> None:
    _, hub = sim
    chosen = hub.gsrns[:6]
    await seed_never_synced(service, chosen)
    first = await service.sync_batch(await claims(service, "w"))
    assert all(o.ok for o in first)
    before = await stored(service, chosen)

    unknown_supplier, lost_claim, gone = chosen[0], chosen[1], chosen[2]
    record = hub.record(unknown_supplier)
    assert record is not None
    record["energy_supplier"] = [{**record["energy_supplier"][0], "business_id": "7080000000001"}]
    hub.put(unknown_supplier, record)
    hub.put(gone, {})  # breaks the contract: rejected by the client before the database
    for gsrn in chosen:
        hub.mutate(gsrn, ChangeKind.RELOCATE)
    await sql(service, "UPDATE ap.accounting_point_sync SET next_sync_at = now()")
    batch = await claims(service, "w")
    # another worker took over one claim after it expired
    await sql(
        service,
        "UPDATE ap.accounting_point_sync s SET last_sync_start = clock_timestamp() "
        "FROM ap.accounting_point a WHERE a.id = s.accounting_point_id AND a.gsrn = %s",
        lost_claim,
    )

    outcomes = {o.gsrn: o for o in await service.sync_batch(batch)}

    assert outcomes[unknown_supplier].reason == "unknown_reference"
    assert "7080000000001" in (outcomes[unknown_supplier].error or "")
    assert outcomes[lost_claim].reason == "claim_lost"
    assert outcomes[gone].reason == "invalid_accounting_point_data"
    after = await stored(service, chosen)
    for gsrn in (unknown_supplier, lost_claim, gone):
        assert after[gsrn]["timelines"] == before[gsrn]["timelines"]
        assert (after[gsrn]["latitude"], after[gsrn]["version"]) == (
            before[gsrn]["latitude"],
            1,
        )
    assert after[unknown_supplier]["last_error_reason"] == "unknown_reference"
    assert after[gone]["last_error_reason"] == "invalid_accounting_point_data"
    assert after[lost_claim]["last_error_reason"] is None  # not ours to record
    for gsrn in chosen[3:]:
        assert outcomes[gsrn].ok
        assert after[gsrn]["version"] == 2
        assert after[gsrn]["latitude"] != before[gsrn]["latitude"]


async def test_a_batch_the_database_refuses_is_merged_one_by_one(
    service: AccountingPointService, sim: Sim, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """One AP locked by someone else times the batch out; the fallback saves the others."""
    _, hub = sim
    chosen = hub.gsrns[:5]
    await seed_never_synced(service, chosen)
    batch = await claims(service, "w")
    locked = chosen[0]

    async with await psycopg.AsyncConnection.connect(db_url) as other:
        await other.execute(
            "SELECT 1 FROM ap.accounting_point_sync s JOIN ap.accounting_point a "
            "ON a.id = s.accounting_point_id WHERE a.gsrn = %s FOR UPDATE OF s",
            (locked,),
        )
        outcomes = {o.gsrn: o for o in await service.sync_batch(batch)}
        await other.rollback()

    assert outcomes[locked].reason == "busy"
    assert all(outcomes[g].ok for g in chosen[1:])
    assert "merging its APs one by one" in caplog.text
    state = await stored(service, chosen)
    assert not state[locked]["synced"] and state[locked]["timelines"] == []
    # its failure could not be recorded either (still locked): the claim expires by itself
    assert "could not record 1 failed syncs" in caplog.text
    assert state[locked]["last_error_reason"] is None
    assert all(state[g]["version"] == 1 for g in chosen[1:])


@pytest.mark.parametrize("batch_apply", [True, False])
async def test_both_worker_apply_modes_sync_everything_once(
    service: AccountingPointService, sim: Sim, batch_apply: bool
) -> None:
    server, hub = sim
    await seed_never_synced(service, hub.gsrns)
    service.settings = service.settings.model_copy(
        update={"claim_batch": 15, "batch_apply": batch_apply}
    )
    stats = await run_worker(service, stop=asyncio.Event(), once=True)
    assert stats.claimed == COUNT and stats.outcomes["ok"] == COUNT
    state = await stored(service, hub.gsrns)
    assert all(s["version"] == 1 and s["synced"] for s in state.values())
    assert all(server.state.calls[g] == 1 for g in hub.gsrns)
