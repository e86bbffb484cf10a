"""The accounting point sync end to end: real Postgres, the datahub simulator over HTTP, the
real service and worker loop. Nothing of tether is mocked."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tether.accountingpoints import pii, retry
from tether.accountingpoints.service import AccountingPointService
from tether.accountingpoints.simulator import Datahub, DatahubFault, start_simulator
from tether.accountingpoints.tasks import run_worker

from .conftest import EARLY, RETRY_BASE_S, TOKEN, Sim, seed_never_synced, sql

OSLO = ZoneInfo("Europe/Oslo")
TIMELINES = ("end_user", "energy_supplier", "metering_grid_area", "energy_direction")
TABLES = tuple(f"accounting_point_{kind}" for kind in TIMELINES)


@pytest.fixture
def sim() -> Iterator[Sim]:
    server, hub = start_simulator(count=12, seed=5, token=TOKEN)
    server.state.slow_s = 4.0  # far beyond the client timeout, short enough to drain
    yield server, hub
    server.stop()


# --- helpers ------------------------------------------------------------------------------------


async def sync_row(service: AccountingPointService, gsrn: str) -> dict[str, Any]:
    rows = await sql(
        service,
        "SELECT s.last_sync_start, s.last_synced_at, s.version, s.requested_at, s.attempts,"
        " s.claimed_by, s.last_error, s.last_error_reason, s.last_error_at, s.unknown_fields,"
        " CASE WHEN isfinite(s.next_sync_at) THEN s.next_sync_at END AS next_sync_at,"
        " s.next_sync_at <= now() AS due, now() AS db_now "
        "FROM ap.accounting_point_sync s JOIN ap.accounting_point a "
        "ON a.id = s.accounting_point_id WHERE a.gsrn = %s",
        gsrn,
    )
    assert len(rows) == 1, gsrn
    return rows[0]


async def make_due(service: AccountingPointService, gsrn: str) -> None:
    await sql(
        service,
        "UPDATE ap.accounting_point_sync s SET next_sync_at = now() FROM ap.accounting_point a "
        "WHERE a.id = s.accounting_point_id AND a.gsrn = %s",
        gsrn,
    )


async def snapshot(service: AccountingPointService, gsrn: str) -> dict[str, list[str]]:
    """Every stored byte of one AP: its row, its timelines and all of their history."""
    found = await sql(service, "SELECT id FROM ap.accounting_point WHERE gsrn = %s", gsrn)
    ap = found[0]["id"]
    out: dict[str, list[str]] = {}
    for table, key in [("accounting_point", "id")] + [(t, "accounting_point_id") for t in TABLES]:
        for suffix in ("", "_history"):
            rows = await sql(
                service,
                f"SELECT row_to_json(t)::text AS j FROM ap.{table}{suffix} t "
                f"WHERE t.{key} = %s ORDER BY 1",
                ap,
            )
            out[table + suffix] = [r["j"] for r in rows]
    return out


def _moment(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def expected_timelines(record: dict[str, Any]) -> set[tuple[str, Any, Any, str]]:
    """The simulator's record as (kind, valid_from, valid_to, value), like ``get_timelines``."""
    out = set()
    for kind in TIMELINES:
        for p in record.get(kind) or []:
            value = ",".join(p["direction"]) if kind == "energy_direction" else p["business_id"]
            if kind == "end_user":  # stored as tether stores it: person ids as keyed hashes
                value = pii.pseudonym(value, b"dev-pii-key")
            out.add((kind, _moment(p["valid_from"]), _moment(p["valid_to"]), value))
    return out


async def stored_timelines(
    service: AccountingPointService, gsrn: str
) -> set[tuple[str, Any, Any, str]]:
    _, timelines, _ = await service.get(gsrn)
    return {(t["kind"], t["valid_from"], t["valid_to"], t["value"]) for t in timelines}


async def assert_matches_datahub(service: AccountingPointService, hub: Datahub, gsrn: str) -> None:
    record = hub.record(gsrn)
    assert record is not None
    assert await stored_timelines(service, gsrn) == expected_timelines(record)
    ap, _, _ = await service.get(gsrn)
    assert (ap["latitude"], ap["longitude"]) == (record.get("latitude"), record.get("longitude"))


def current_end_user(hub: Datahub, gsrn: str) -> str:
    record = hub.record(gsrn)
    assert record is not None
    now = datetime.now(OSLO)
    for p in record["end_user"]:
        start, end = _moment(p["valid_from"]), _moment(p["valid_to"])
        assert start is not None
        if start <= now and (end is None or end > now):
            return str(p["business_id"])
    raise AssertionError("no current end user")


async def work(service: AccountingPointService, **kw: Any) -> Any:
    return await run_worker(service, stop=asyncio.Event(), once=True, **kw)


# --- first sync and selection -------------------------------------------------------------------


async def test_registered_controllable_units_are_synced_to_equal_the_datahub(
    service: AccountingPointService, sim: Sim
) -> None:
    server, hub = sim
    chosen = hub.gsrns[:4]
    for gsrn in chosen:
        await service.register_controllable_unit(
            gsrn=gsrn, name=f"battery {gsrn}", start_date=EARLY
        )
    stats = await work(service)
    assert stats.claimed == 4 and stats.outcomes["ok"] == 4
    for gsrn in chosen:
        await assert_matches_datahub(service, hub, gsrn)
        state = await sync_row(service, gsrn)
        # fetched once at registration (unknown AP) and once by the worker (start date given)
        assert server.state.calls[gsrn] == 2
        assert state["version"] == 2 and state["attempts"] == 0
        assert state["last_sync_start"] is None and state["claimed_by"] is None
        assert not state["due"]
    assert set(server.state.calls) == set(chosen)


async def test_only_accounting_points_with_a_controllable_unit_are_claimed(
    service: AccountingPointService, sim: Sim
) -> None:
    server, hub = sim
    looked_up, with_cu = hub.gsrns[0], hub.gsrns[1]
    result = await service.lookup(end_user=current_end_user(hub, looked_up), gsrn=looked_up)
    assert result.controllable_units == []
    await seed_never_synced(service, [with_cu])
    # even when its clock says due, an AP without a CU is never claimed
    await sql(
        service,
        "UPDATE ap.accounting_point_sync s SET next_sync_at = '-infinity' "
        "FROM ap.accounting_point a WHERE a.id = s.accounting_point_id AND a.gsrn = %s",
        looked_up,
    )
    stats = await work(service)
    assert stats.claimed == 1
    assert server.state.calls[looked_up] == 1  # the lookup's fetch only
    assert server.state.calls[with_cu] == 1
    assert (await sync_row(service, looked_up))["version"] == 1
    await assert_matches_datahub(service, hub, with_cu)


async def test_never_synced_are_claimed_before_the_longest_overdue(
    service: AccountingPointService, sim: Sim
) -> None:
    _, hub = sim
    a, b, c, fresh = hub.gsrns[:4]
    await seed_never_synced(service, [a, b, c])
    await work(service)
    for gsrn, overdue in ((a, "1 hour"), (b, "1 day"), (c, "1 minute")):
        await sql(
            service,
            "UPDATE ap.accounting_point_sync s SET next_sync_at = now() - %s::interval "
            "FROM ap.accounting_point a WHERE a.id = s.accounting_point_id AND a.gsrn = %s",
            overdue,
            gsrn,
        )
    await seed_never_synced(service, [fresh])
    order = []
    for _ in range(4):
        claimed = await service.claim_due(limit=1, worker="order-test")
        assert len(claimed) == 1
        order.append(claimed[0].gsrn)
    assert order == [fresh, b, a, c]
    assert await service.claim_due(limit=1, worker="order-test") == []


async def test_controllable_unit_start_date_widens_the_fetch_window(
    service: AccountingPointService, sim: Sim
) -> None:
    _, hub = sim
    gsrn = hub.gsrns[2]
    await seed_never_synced(service, [gsrn], start=None)
    await work(service)
    record = hub.record(gsrn)
    assert record is not None
    today = datetime.now(OSLO).replace(hour=0, minute=0, second=0, microsecond=0)
    recent = {
        t
        for t in expected_timelines(record)
        if t[2] is None or t[2] > today  # periods still valid at today's midnight
    }
    assert await stored_timelines(service, gsrn) == recent
    # a CU starting long ago makes the AP due at once, and the next sync fetches the past too
    await service.register_controllable_unit(gsrn=gsrn, name="heat pump", start_date=EARLY)
    assert (await sync_row(service, gsrn))["due"]
    await work(service)
    await assert_matches_datahub(service, hub, gsrn)


# --- faults -------------------------------------------------------------------------------------

FAULT_REASONS = {
    DatahubFault.DOWN: "upstream_refused",
    DatahubFault.SLOW: "upstream_timeout",
    DatahubFault.ERROR_500: "upstream_5xx",
    DatahubFault.GARBAGE: "upstream_invalid_payload",
    DatahubFault.CONTRACT_VIOLATION: "invalid_accounting_point_data",
    DatahubFault.OVERLAPPING: "invalid_accounting_point_data",
    DatahubFault.NOT_MIDNIGHT: "invalid_accounting_point_data",
    DatahubFault.UNKNOWN_ENUM: "invalid_accounting_point_data",
}


@pytest.mark.parametrize("fault", list(FAULT_REASONS))
async def test_a_failed_sync_changes_no_stored_data_and_backs_off(
    service: AccountingPointService, sim: Sim, fault: DatahubFault
) -> None:
    server, hub = sim
    gsrn = hub.gsrns[3]
    await seed_never_synced(service, [gsrn])
    await work(service)
    before = await snapshot(service, gsrn)
    synced = await sync_row(service, gsrn)

    # the datahub changes too, so a sync that wrote anything at all would show
    hub.mutate(gsrn, "supplier_switch")
    hub.mutate(gsrn, "relocate")
    server.set_mode(fault)
    for attempt in (1, 2):
        await make_due(service, gsrn)
        stats = await work(service)
        assert stats.outcomes == {FAULT_REASONS[fault]: 1}
        state = await sync_row(service, gsrn)
        assert state["last_error_reason"] == FAULT_REASONS[fault]
        assert state["last_error"]
        assert state["attempts"] == attempt
        assert state["last_sync_start"] is None and state["claimed_by"] is None
        backoff = timedelta(seconds=RETRY_BASE_S * 2 ** (attempt - 1))
        waited = state["next_sync_at"] - state["last_error_at"]
        assert backoff * (1 - retry.JITTER) <= waited <= backoff  # jittered, never longer
        assert not state["due"]
        assert state["version"] == synced["version"]
        assert state["last_synced_at"] == synced["last_synced_at"]
        assert await snapshot(service, gsrn) == before

    server.set_mode(DatahubFault.NONE)
    assert (await work(service)).claimed == 0  # still backing off
    await make_due(service, gsrn)
    assert (await work(service)).outcomes == {"ok": 1}
    state = await sync_row(service, gsrn)
    assert state["attempts"] == 0 and state["version"] == synced["version"] + 1
    assert state["last_error"] is None and state["last_error_reason"] is None
    assert state["last_error_at"] is None
    await assert_matches_datahub(service, hub, gsrn)


async def test_unknown_fields_are_tolerated_and_recorded(
    service: AccountingPointService, sim: Sim
) -> None:
    server, hub = sim
    gsrn = hub.gsrns[4]
    await seed_never_synced(service, [gsrn])
    server.set_mode(DatahubFault.UNKNOWN_FIELDS)
    assert (await work(service)).outcomes == {"ok": 1}
    await assert_matches_datahub(service, hub, gsrn)
    state = await sync_row(service, gsrn)
    assert state["last_error"] is None
    assert {"metering_point_category", "x_datahub", "end_user[].x_source"} <= set(
        state["unknown_fields"]
    )
    # the next plain answer clears the record of them
    server.set_mode(DatahubFault.NONE)
    await make_due(service, gsrn)
    await work(service)
    assert (await sync_row(service, gsrn))["unknown_fields"] is None


# --- changes and events -------------------------------------------------------------------------


async def test_a_supplier_switch_event_brings_the_new_supplier_and_history(
    service: AccountingPointService, sim: Sim
) -> None:
    server, hub = sim
    gsrn = hub.gsrns[5]
    await seed_never_synced(service, [gsrn])
    await work(service)
    suppliers_before = [
        t for t in await stored_timelines(service, gsrn) if t[0] == "energy_supplier"
    ]
    assert (await work(service)).claimed == 0  # synced: nothing due

    hub.mutate(gsrn, "supplier_switch")
    outcome = await service.handle_changed([gsrn])
    assert outcome.accepted == [gsrn] and outcome.ignored == []
    assert (await work(service)).outcomes == {"ok": 1}

    await assert_matches_datahub(service, hub, gsrn)
    suppliers = [t for t in await stored_timelines(service, gsrn) if t[0] == "energy_supplier"]
    assert len(suppliers) == len(suppliers_before) + 1
    history = await service.history(gsrn)
    replaced = [h for h in history if h["kind"] == "energy_supplier"]
    assert len(replaced) == 1
    assert replaced[0]["history_operation"] == "UPDATE" and replaced[0]["valid_to"] is None
    assert replaced[0]["replaced_by"].startswith("sync:")
    assert server.state.calls[gsrn] == 2


async def test_an_event_during_a_sync_makes_the_accounting_point_due_again_at_once(
    service: AccountingPointService, sim: Sim
) -> None:
    _, hub = sim
    gsrn = hub.gsrns[6]
    await seed_never_synced(service, [gsrn])
    await work(service)

    await make_due(service, gsrn)
    [claim] = await service.claim_due(limit=10, worker="w1")
    # the change and its event land after the claim; say the fetch had already happened
    outcome = await service.handle_changed([gsrn])
    assert outcome.accepted == [gsrn]
    state = await sync_row(service, gsrn)
    assert state["claimed_by"] == "w1" and not state["due"]  # the claim is kept
    result = await service.sync_one(claim)
    assert result.ok
    state = await sync_row(service, gsrn)
    assert state["due"] and state["requested_at"] is not None
    hub.mutate(gsrn, "move")
    assert (await work(service)).outcomes == {"ok": 1}
    await assert_matches_datahub(service, hub, gsrn)
    state = await sync_row(service, gsrn)
    assert not state["due"] and state["requested_at"] is None


async def test_a_controllable_unit_registered_during_a_sync_is_not_lost(
    service: AccountingPointService, sim: Sim
) -> None:
    _, hub = sim
    gsrn = hub.gsrns[7]
    await seed_never_synced(service, [gsrn], start=None)
    await work(service)  # synced with today's window
    await make_due(service, gsrn)
    [claim] = await service.claim_due(limit=10, worker="w1")
    assert claim.earliest_start is None
    # a CU with an early start date arrives while the sync with today's window is in flight
    await service.register_controllable_unit(gsrn=gsrn, name="ev charger", start_date=EARLY)
    result = await service.sync_one(claim)
    assert result.ok
    assert (await sync_row(service, gsrn))["due"]  # the wider window is still owed
    assert (await work(service)).outcomes == {"ok": 1}
    await assert_matches_datahub(service, hub, gsrn)


async def test_a_burst_of_events_costs_one_adapter_call(
    service: AccountingPointService, sim: Sim
) -> None:
    server, hub = sim
    gsrn, other = hub.gsrns[8], hub.gsrns[9]
    await seed_never_synced(service, [gsrn, other])
    await work(service)
    server.state.calls.clear()
    for _ in range(10):
        await service.handle_changed([gsrn, gsrn])
    stats = await work(service)
    assert stats.claimed == 1
    assert dict(server.state.calls) == {gsrn: 1}
    assert not (await sync_row(service, gsrn))["due"]


async def test_events_for_unknown_accounting_points_are_ignored(
    service: AccountingPointService, sim: Sim
) -> None:
    _, hub = sim
    held, unknown = hub.gsrns[0], hub.gsrns[1]
    await seed_never_synced(service, [held])
    outcome = await service.handle_changed([unknown, held])
    assert outcome.accepted == [held] and outcome.ignored == [unknown]
    assert await sql(service, "SELECT 1 FROM ap.accounting_point WHERE gsrn = %s", unknown) == []


# --- claims -------------------------------------------------------------------------------------


async def test_a_stale_claim_is_refused_and_changes_nothing(
    service: AccountingPointService, sim: Sim
) -> None:
    _, hub = sim
    gsrn = hub.gsrns[10]
    await seed_never_synced(service, [gsrn])
    await work(service)
    await make_due(service, gsrn)
    [stale] = await service.claim_due(limit=10, worker="w-dead")
    # w-dead's claim times out (as if it hung); w-new takes the AP over
    await make_due(service, gsrn)
    [fresh] = await service.claim_due(limit=10, worker="w-new")
    assert fresh.gsrn == gsrn and fresh.started_at != stale.started_at
    hub.mutate(gsrn, "supplier_switch")
    before = await snapshot(service, gsrn)
    claim_state = await sync_row(service, gsrn)

    late = await service.sync_one(stale)
    assert not late.ok and late.reason == "claim_lost"
    assert await snapshot(service, gsrn) == before
    after = await sync_row(service, gsrn)
    assert {**after, "db_now": None} == {**claim_state, "db_now": None}
    assert after["claimed_by"] == "w-new" and after["last_sync_start"] == fresh.started_at

    done = await service.sync_one(fresh)
    assert done.ok
    await assert_matches_datahub(service, hub, gsrn)
    state = await sync_row(service, gsrn)
    assert state["claimed_by"] is None and state["attempts"] == 0
