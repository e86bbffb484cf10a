"""Freshness is true only when the last refresh attempt succeeded within the window; a write that
changed e-licensing makes the copy stale until a refresh whose request left after it succeeds."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import httpx
import psycopg

from tether.core import db
from tether.core.bootstrap import Runtime
from tether.elicensing import repository
from tether.elicensing.models import StaleReason
from tether.elicensing.service import ElicensingService
from tether.elicensing.simulator import ElicensingSimulatorServer

from .conftest import INVOICE_CALL, invoice_number, small_service

BASE = "/api/v1/compliance-report-versions"
ADJUST_CALL = "POST /client/{id}/adjust"


def _stale_rows(db_url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "SELECT invoice_number, reason FROM elicensing.invoice_stale"
        ).fetchall()


async def test_a_failed_forced_refresh_never_turns_stale_into_fresh(
    runtime: Runtime, versions: list[int], sim: ElicensingSimulatorServer
) -> None:
    async with small_service(runtime, pool_max=4, breaker_failure_threshold=100) as service:
        first = await service.read_invoice(versions[0])
        sim.set_mode("down")
        forced = await service.read_invoice(versions[0], force=True)
        plain = await service.read_invoice(versions[0])  # well within the 900 s window
        sim.set_mode("none")
        healed = await service.read_invoice(versions[0])
    assert first.data_is_fresh
    assert not forced.data_is_fresh and forced.stale_reason is StaleReason.UPSTREAM_UNAVAILABLE
    assert not plain.data_is_fresh and plain.stale_reason is StaleReason.UPSTREAM_UNAVAILABLE
    assert plain.stale_since is not None and plain.last_refreshed == first.last_refreshed
    assert healed.data_is_fresh and healed.stale_reason is None
    assert sim.state.calls[INVOICE_CALL] == 2  # the first read and the healing one got through


async def test_a_write_whose_refresh_fails_leaves_the_copy_stale_until_a_refresh_succeeds(
    http: httpx.AsyncClient, versions: list[int], sim: ElicensingSimulatorServer
) -> None:
    before = (await http.get(f"{BASE}/{versions[0]}/obligation-summary")).json()
    sim.set_mode("none", latency_ms=300)

    async def break_reads_once_the_write_arrives() -> None:
        while sim.state.calls[ADJUST_CALL] == 0:  # noqa: ASYNC110 - the simulator counts only
            await asyncio.sleep(0.005)
        # a payload fault: the write being answered is untouched, the refresh after it fails
        await asyncio.to_thread(sim.set_mode, "missing_fields")

    breaker = asyncio.create_task(break_reads_once_the_write_arrives())
    write = await http.post(
        f"{BASE}/{versions[0]}/apply-compliance-units", json={"amount": "10.00"}
    )
    await breaker

    assert write.status_code == 200, write.text
    assert write.json()["data_is_fresh"] is False
    assert write.json()["stale_reason"] == "upstream_invalid_payload"
    fee = sim.ledger.fees[sim.ledger.invoices[invoice_number(sim)].fee_ids[0]]
    assert fee.adjustments[-1].amount == Decimal("-10.00")  # e-licensing took the write
    plain = (await http.get(f"{BASE}/{versions[0]}/obligation-summary")).json()
    assert plain["data_is_fresh"] is False  # within the window, but tether knows better
    assert plain["outstanding_balance"] == before["outstanding_balance"]

    sim.set_mode("none", latency_ms=0)
    healed = (await http.get(f"{BASE}/{versions[0]}/obligation-summary")).json()
    assert healed["data_is_fresh"] is True
    assert Decimal(healed["outstanding_balance"]) == Decimal(
        before["outstanding_balance"]
    ) - Decimal("10.00")


async def test_a_refresh_that_left_before_a_write_does_not_clear_the_write_mark(
    service: ElicensingService, versions: list[int], sim: ElicensingSimulatorServer, db_url: str
) -> None:
    read = await service.read_invoice(versions[0])
    number = read.invoice.invoice_number
    async with db.transaction(service.pool) as conn:
        row = await db.fetch_one(conn, "SELECT clock_timestamp() AS now")
    left_at = row["now"]
    remote = await service.client.get_invoice(read.invoice.client_object_id, number)
    await service.mark_changed(number, "a write")  # after the refresh's request left

    async with db.autocommit(service.pool) as conn:
        await repository.save_refresh(
            conn,
            client_object_id=read.invoice.client_object_id,
            remote=remote,
            requested_at=left_at,
            holder=uuid.uuid4(),
        )
    assert _stale_rows(db_url) == [(number, "upstream_changed")]

    after = await service.read_invoice(versions[0])  # stale, so it refreshes: a later request
    assert after.data_is_fresh and _stale_rows(db_url) == []
