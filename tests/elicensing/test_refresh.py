"""The refresh-on-read wrapper against a real simulator and a real database."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from prometheus_client import REGISTRY
from psycopg_pool import AsyncConnectionPool

from tether.core import db
from tether.core.bootstrap import Runtime
from tether.elicensing import repository
from tether.elicensing.errors import InvalidElicensingPayload, InvoiceNotFound
from tether.elicensing.models import InvoiceType, RemoteFee, RemoteInvoice, StaleReason
from tether.elicensing.refresh import save_together
from tether.elicensing.service import ElicensingService, build
from tether.elicensing.settings import ElicensingSettings
from tether.elicensing.simulator import ElicensingSimulatorServer

from .conftest import INVOICE_CALL, invoice_number, make_settings


def _rows(db_url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]


def _snapshot(db_url: str) -> dict[str, Any]:
    return {
        "invoice": _rows(
            db_url,
            "SELECT invoice_number, outstanding_balance, last_refreshed, is_void"
            " FROM elicensing.invoice ORDER BY 1",
        ),
        "fees": _rows(db_url, "SELECT object_id, base_amount FROM elicensing.line_item ORDER BY 1"),
        "payments": _rows(
            db_url, "SELECT payment_object_id, amount FROM elicensing.payment ORDER BY 1"
        ),
        "adjustments": _rows(
            db_url, "SELECT adjustment_object_id, amount FROM elicensing.adjustment ORDER BY 1"
        ),
    }


async def test_first_read_copies_the_invoice_and_all_its_children(
    service: ElicensingService, versions: list[int], sim: ElicensingSimulatorServer
) -> None:
    read = await service.read_invoice(versions[0])
    upstream = sim.ledger.invoice_json(
        sim.ledger.invoices[invoice_number(sim)].client_object_id, invoice_number(sim)
    )
    assert upstream is not None
    assert read.data_is_fresh and read.stale_reason is None and read.last_refreshed is not None
    assert read.invoice.invoice_number == invoice_number(sim)
    assert read.invoice.outstanding_balance == Decimal(upstream["invoiceOutstandingBalance"])
    fee = upstream["fees"][0]
    assert [li.object_id for li in read.invoice.line_items] == [str(fee["feeObjectId"])]
    line = read.invoice.line_items[0]
    assert sorted(p.payment_object_id for p in line.payments) == sorted(
        str(p["paymentObjectId"]) for p in fee["payments"]
    )
    assert sorted(a.adjustment_object_id for a in line.adjustments) == sorted(
        str(a["adjustmentObjectId"]) for a in fee["adjustments"]
    )
    assert read.invoice.amount_due == read.invoice.outstanding_balance


async def test_refresh_upserts_changes_and_deletes_children_gone_upstream(
    service: ElicensingService, versions: list[int], sim: ElicensingSimulatorServer, db_url: str
) -> None:
    number = invoice_number(sim)
    gone = sim.ledger.add_payment(number, Decimal("500.00"))
    gone_adj = sim.ledger.add_adjustment(number, Decimal("-25.00"))
    before = await service.read_invoice(versions[0])
    assert gone.object_id in {
        int(p.payment_object_id) for p in before.invoice.line_items[0].payments
    }

    arrived = sim.ledger.add_payment(number, Decimal("1234.56"))
    assert sim.ledger.remove_child(number, gone.object_id)
    assert sim.ledger.remove_child(number, gone_adj.object_id)
    after = await service.read_invoice(versions[0], force=True)

    payments = {p.payment_object_id: p.amount for p in after.invoice.line_items[0].payments}
    adjustments = {a.adjustment_object_id for a in after.invoice.line_items[0].adjustments}
    assert payments[str(arrived.object_id)] == Decimal("1234.56")
    assert str(gone.object_id) not in payments
    assert str(gone_adj.object_id) not in adjustments
    # a payment arrived, one was reversed, and a -25.00 adjustment was withdrawn
    expected = before.invoice.outstanding_balance - Decimal("1234.56") + Decimal("525.00")
    assert after.invoice.outstanding_balance == expected
    # the removed children are in history, so what the invoice said before is answerable
    deleted = _rows(
        db_url,
        "SELECT payment_object_id, history_operation FROM elicensing.payment_history",
    )
    assert (str(gone.object_id), "DELETE") in deleted
    old_balance = _rows(
        db_url,
        "SELECT outstanding_balance FROM elicensing.invoice_history"
        " WHERE history_operation = 'UPDATE'",
    )
    assert old_balance == [(before.invoice.outstanding_balance,)]


async def test_removed_fee_takes_its_payments_and_adjustments_with_it(
    service: ElicensingService, versions: list[int], sim: ElicensingSimulatorServer, db_url: str
) -> None:
    number = invoice_number(sim)
    sim.ledger.add_payment(number, Decimal("10.00"))
    await service.read_invoice(versions[0])
    fee_id = sim.ledger.invoices[number].fee_ids[0]
    assert sim.ledger.remove_child(number, fee_id)
    read = await service.read_invoice(versions[0], force=True)
    assert read.data_is_fresh and read.invoice.line_items == ()
    assert _rows(db_url, "SELECT count(*) FROM elicensing.payment") == [(0,)]
    assert _rows(
        db_url, "SELECT count(*) FROM elicensing.line_item_history WHERE history_operation='DELETE'"
    ) == [(1,)]


async def test_read_inside_the_window_makes_no_call_unless_forced(
    service: ElicensingService, versions: list[int], sim: ElicensingSimulatorServer
) -> None:
    first = await service.read_invoice(versions[0])
    second = await service.read_invoice(versions[0])
    assert sim.state.calls[INVOICE_CALL] == 1
    assert second.data_is_fresh and second.last_refreshed == first.last_refreshed
    forced = await service.read_invoice(versions[0], force=True)
    assert sim.state.calls[INVOICE_CALL] == 2
    assert forced.last_refreshed is not None and first.last_refreshed is not None
    assert forced.last_refreshed > first.last_refreshed


async def test_read_after_the_window_refreshes(
    runtime: Runtime, versions: list[int], sim: ElicensingSimulatorServer, tmp_path: Path
) -> None:
    settings = make_settings(sim, freshness_s=0)
    expired = dataclasses.replace(runtime, overrides={ElicensingSettings: settings})
    async with build(expired) as service:
        await service.read_invoice(versions[0])
        await service.read_invoice(versions[0])
    assert sim.state.calls[INVOICE_CALL] == 2


async def test_report_version_without_invoice_is_not_found(
    service: ElicensingService, versions: list[int]
) -> None:
    with pytest.raises(InvoiceNotFound, match="no late submission"):
        await service.read_invoice(versions[0], InvoiceType.LATE_SUBMISSION)
    with pytest.raises(InvoiceNotFound):
        await service.read_invoice(999_999)


def _invalid_payloads() -> float:
    return REGISTRY.get_sample_value("tether_elicensing_invalid_payloads_total") or 0.0


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("down", StaleReason.UPSTREAM_UNAVAILABLE),
        ("slow", StaleReason.UPSTREAM_UNAVAILABLE),
        ("500", StaleReason.UPSTREAM_UNAVAILABLE),
        ("garbage", StaleReason.UPSTREAM_INVALID_PAYLOAD),
        ("missing_fields", StaleReason.UPSTREAM_INVALID_PAYLOAD),
        ("broken_child", StaleReason.UPSTREAM_INVALID_PAYLOAD),
    ],
)
async def test_fault_leaves_data_intact_and_flags_stale_with_its_reason(
    service: ElicensingService,
    versions: list[int],
    sim: ElicensingSimulatorServer,
    db_url: str,
    mode: str,
    reason: StaleReason,
) -> None:
    number = invoice_number(sim)
    sim.ledger.add_payment(number, Decimal("1.00"))  # so broken_child has a payment to break
    good = await service.read_invoice(versions[0])
    before = _snapshot(db_url)
    sim.ledger.add_payment(number, Decimal("99.00"))  # what a successful refresh would copy
    invalid_before = _invalid_payloads()
    sim.set_mode(mode)

    read = await service.read_invoice(versions[0], force=True)

    assert not read.data_is_fresh
    assert read.stale_reason is reason
    assert read.last_refreshed == good.last_refreshed
    assert read.invoice == good.invoice
    assert _snapshot(db_url) == before
    is_invalid = reason is StaleReason.UPSTREAM_INVALID_PAYLOAD
    assert _invalid_payloads() == invalid_before + (1 if is_invalid else 0)
    recorded = _rows(db_url, "SELECT last_refresh_error_reason FROM elicensing.invoice")
    assert recorded == [(reason.value,)]


async def test_added_fields_are_tolerated(
    service: ElicensingService, versions: list[int], sim: ElicensingSimulatorServer
) -> None:
    sim.set_mode("added_fields")
    arrived = sim.ledger.add_payment(invoice_number(sim), Decimal("5.00"))
    read = await service.read_invoice(versions[0])
    assert read.data_is_fresh
    ids = {p.payment_object_id for p in read.invoice.line_items[0].payments}
    assert str(arrived.object_id) in ids


async def test_voided_invoice_is_kept_and_flagged_void(
    service: ElicensingService, versions: list[int], sim: ElicensingSimulatorServer
) -> None:
    first = await service.read_invoice(versions[0])
    sim.ledger.void(invoice_number(sim))
    read = await service.read_invoice(versions[0], force=True)
    assert read.data_is_fresh and read.invoice.is_void
    assert read.invoice.line_items == first.invoice.line_items


async def test_a_404_that_is_not_about_the_invoice_keeps_the_copy_and_reads_stale(
    runtime: Runtime, versions: list[int], el_settings: ElicensingSettings
) -> None:
    """A wrong base URL (or an unknown client, a proxy's page) also answers 404; it used to mark
    every invoice void and fresh. Only an answer that says the invoice is gone voids it."""
    async with build(runtime) as service:
        first = await service.read_invoice(versions[0])
    wrong = dataclasses.replace(
        runtime,
        overrides={
            ElicensingSettings: el_settings.model_copy(
                update={"url": el_settings.url.rstrip("/") + "/not-the-api"}
            )
        },
    )
    async with build(wrong) as service:
        read = await service.read_invoice(versions[0], force=True)
    assert not read.data_is_fresh and not read.invoice.is_void
    assert read.invoice.line_items == first.invoice.line_items


async def test_refresh_that_fails_halfway_leaves_no_trace(
    service: ElicensingService,
    versions: list[int],
    sim: ElicensingSimulatorServer,
    pool: AsyncConnectionPool[Any],
    db_url: str,
) -> None:
    await service.read_invoice(versions[0])
    await service.read_invoice(versions[1])
    before = _snapshot(db_url)
    good = await service.read_invoice(versions[0])
    other = await service.read_invoice(versions[1])
    # a fee whose GUID belongs to another invoice's fee: the line item upsert violates a
    # unique constraint after the invoice row was already updated in the same transaction
    stolen = other.invoice.line_items[0]
    remote = RemoteInvoice(
        client_object_id=good.invoice.client_object_id,
        client_guid="x",
        invoice_number=good.invoice.invoice_number,
        due_date=None,
        outstanding_balance=Decimal("1.00"),
        fee_balance=Decimal("1.00"),
        interest_balance=Decimal("0.00"),
        fees=(
            RemoteFee(
                fee_object_id="new-fee",
                fee_guid=stolen.guid,
                business_area_code=None,
                fee_date=stolen.fee_date,
                description="clash",
                base_amount=Decimal("1.00"),
                tax_total=Decimal(0),
                adjustment_total=Decimal(0),
                tax_adjustment_total=Decimal(0),
                payment_base_amount=Decimal(0),
                payment_total=Decimal(0),
                fee_type=None,
                payments=(),
                adjustments=(),
            ),
        ),
    )
    with pytest.raises(InvalidElicensingPayload, match="refused"):
        async with db.autocommit(pool) as conn:
            await repository.save_refresh(
                conn,
                client_object_id=good.invoice.client_object_id,
                remote=remote,
                requested_at=datetime.now(UTC),
                holder=uuid.uuid4(),
            )
    assert _snapshot(db_url) == before


async def test_a_refused_answer_saved_with_others_fails_only_its_own_refresh(
    service: ElicensingService,
    versions: list[int],
    sim: ElicensingSimulatorServer,
    pool: AsyncConnectionPool[Any],
) -> None:
    good = (await service.read_invoice(versions[0])).invoice
    other = (await service.read_invoice(versions[1])).invoice
    sim.ledger.add_payment(good.invoice_number, Decimal("5.00"))
    answer = await service.client.get_invoice(good.client_object_id, good.invoice_number)
    fee = dataclasses.replace(  # a new fee of the other invoice with a GUID the first one's has
        answer.fees[0], fee_object_id="new-fee", fee_guid=good.line_items[0].guid
    )
    clash = dataclasses.replace(
        answer,
        client_object_id=other.client_object_id,
        invoice_number=other.invoice_number,
        fees=(fee,),
    )
    saves = [
        repository.Save(
            client_object_id=remote.client_object_id,
            remote=remote,
            requested_at=datetime.now(UTC),
            holder=uuid.uuid4(),
        )
        for remote in (answer, clash)
    ]
    targets = [(version, InvoiceType.OBLIGATION) for version in versions[:2]]
    async with db.autocommit(pool) as conn:
        outcomes, found = await save_together(conn, saves, targets)
    assert outcomes[0] is None and isinstance(outcomes[1], InvalidElicensingPayload)
    saved = found[targets[0]].invoice
    assert saved is not None and Decimal("5.00") in [
        p.amount for item in saved.line_items for p in item.payments
    ]  # the copy after the save, read with it
    after = await service.read_invoice(versions[0])
    paid = [p.amount for item in after.invoice.line_items for p in item.payments]
    paid_before = [p.amount for item in good.line_items for p in item.payments]
    assert sorted(paid) == sorted([*paid_before, Decimal("5.00")]) and after.data_is_fresh
    unchanged = await service.read_invoice(versions[1])
    assert unchanged.invoice.line_items == other.line_items


async def test_a_group_of_answers_is_saved_and_read_back_in_one_round_trip(
    service: ElicensingService,
    versions: list[int],
    sim: ElicensingSimulatorServer,
    pool: AsyncConnectionPool[Any],
    db_url: str,
) -> None:
    before = [(await service.read_invoice(v)).invoice for v in versions[:2]]
    for invoice in before:
        sim.ledger.add_payment(invoice.invoice_number, Decimal("7.00"))
    saves = []
    for invoice in before:
        remote = await service.client.get_invoice(invoice.client_object_id, invoice.invoice_number)
        holder = uuid.uuid4()
        with psycopg.connect(db_url, autocommit=True) as conn:  # a lease the save must end
            conn.execute(
                "INSERT INTO elicensing.refresh_lease (invoice_number, holder, leased_until)"
                " VALUES (%s, %s, now() + interval '1 minute')",
                (invoice.invoice_number, holder),
            )
        saves.append(
            repository.Save(
                client_object_id=invoice.client_object_id,
                remote=remote,
                requested_at=datetime.now(UTC),
                holder=holder,
            )
        )
    targets = [(version, InvoiceType.OBLIGATION) for version in versions[:2]]
    async with db.autocommit(pool) as conn:
        outcomes, found = await save_together(conn, saves, targets)
    assert outcomes == [None, None]
    for target, invoice in zip(targets, before, strict=True):
        after = found[target].invoice
        assert after is not None and after.invoice_number == invoice.invoice_number
        paid = sorted(p.amount for item in after.line_items for p in item.payments)
        was = sorted(p.amount for item in invoice.line_items for p in item.payments)
        assert paid == sorted([*was, Decimal("7.00")])
        assert after.last_refreshed is not None and invoice.last_refreshed is not None
        assert after.last_refreshed > invoice.last_refreshed
    with psycopg.connect(db_url) as conn:
        left = conn.execute("SELECT count(*) FROM elicensing.refresh_lease").fetchone()
    assert left == (0,)  # the save ended both leases
