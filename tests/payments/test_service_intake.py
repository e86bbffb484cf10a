"""Intake without a payment system: one transaction per message, statuses, per-case waiting,
receipts booked straight from receipt XML (the payment system's own format)."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

import pytest
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool

from tether.core import db
from tether.core.errors import Conflict, InvalidInput
from tether.payments import codec
from tether.payments.oppdrag import build_receipt_xml
from tether.payments.receipts import Booking
from tether.payments.service import PaymentsService

from .conftest import day, june, message


async def _count(pool: AsyncConnectionPool[Any], table: str) -> int:
    async with pool.connection() as conn:
        cur = await conn.execute(f"SELECT count(*) AS n FROM pay.{table}")  # type: ignore[arg-type]
        row = await cur.fetchone()
        assert row is not None
        return int(row["n"])


async def _receipt(service: PaymentsService, sak: str, code: str, text: str | None = None) -> str:
    orders = await service.orders(sak)
    xml = build_receipt_xml(orders[-1].xml, code, beskr_melding=text)
    return await service.apply_receipt(codec.read_receipt(xml), xml)


async def test_first_message_stores_order_candidates_and_mottatt(
    service: PaymentsService, pool: AsyncConnectionPool[Any]
) -> None:
    await service.submit("k1", message(june(3, 14)))
    status = await service.latest_status("k1")
    assert status.status == "MOTTATT"
    assert status.body["detaljer"]["linjer"][0]["fom"] == "2024-06-03"
    orders = await service.orders("sak1")
    assert [o.state for o in orders] == ["MOTTATT"]
    assert "<kodeEndring>NY</kodeEndring>" in orders[0].xml
    # the statement builds the body from the order's details: the spec's status shape
    assert status.body == {
        "status": "MOTTATT",
        "detaljer": orders[0].details,
        "error": None,
        "simulering": False,
    }
    assert await _count(pool, "candidate") == 1
    case = await service.case("sak1")
    assert case.active_uids is None and case.inflight_order == orders[0].id


async def test_unparseable_message_is_feilet_400_under_its_key(
    service: PaymentsService, pool: AsyncConnectionPool[Any]
) -> None:
    await service.submit("bad", b"{not json")
    status = await service.latest_status("bad")
    assert status.status == "FEILET"
    assert status.body["error"]["statusCode"] == 400
    assert await _count(pool, "oppdrag") == 0
    await service.submit("good", message(june(3, 7)))  # other messages keep flowing
    assert (await service.latest_status("good")).status == "MOTTATT"


@pytest.mark.parametrize(
    ("days", "extra", "code", "text"),
    [
        (june(3, 7), {"sakId": "s" * 31}, 400, "sakId"),
        (june(3, 7), {"behandlingId": "b" * 31}, 400, "behandlingId"),
        (
            [
                day(date(2024, 12, 31), type_="DagpengerFerietillegg"),
                day(date(2025, 1, 2), type_="DagpengerFerietillegg"),
            ],
            {},
            400,
            "årsskiftet",
        ),
        ([day(date(2021, 1, 4)), day(date(2024, 1, 10))], {}, 400, "1100"),
        ([day(date(2024, 6, 3), 100), day(date(2024, 6, 3), 200)], {}, 400, "duplikate"),
        ([{"dato": "2024-06-03"}], {}, 400, "invalid message"),
    ],
)
async def test_validation_errors_become_feilet(
    service: PaymentsService,
    pool: AsyncConnectionPool[Any],
    days: list[dict[str, Any]],
    extra: dict[str, Any],
    code: int,
    text: str,
) -> None:
    await service.submit("v", message(days, **extra))
    status = await service.latest_status("v")
    assert status.status == "FEILET"
    assert status.body["error"]["statusCode"] == code
    assert text in status.body["error"]["msg"]
    assert await service.orders("sak1") == []
    assert await _count(pool, "sak") == 0  # a refused message leaves no case behind


async def test_invalid_message_is_feilet_at_once_while_its_case_has_an_order_out(
    service: PaymentsService,
) -> None:
    """A rule that needs no case is checked before the case: the message is not queued behind
    the order in flight, and the case's later messages are planned as if it never came."""
    await service.submit("k1", message(june(3, 7)))
    await service.submit("bad", message([day(date(2021, 1, 4)), day(date(2024, 1, 10))]))
    status = await service.latest_status("bad")
    assert status.status == "FEILET" and "1100" in status.body["error"]["msg"]
    await service.submit("k2", message(june(3, 14)))
    assert (await service.latest_status("k2")).status == "VENTER"
    await _receipt(service, "sak1", "00")
    assert (await service.latest_status("k2")).status == "MOTTATT"


async def test_empty_or_all_zero_message_on_a_new_case_is_bare_ok(service: PaymentsService) -> None:
    await service.submit("e1", message([]))
    await service.submit("e2", message(june(3, 7, 0)))
    for key in ("e1", "e2"):
        status = await service.latest_status(key)
        assert status.status == "OK" and status.body["detaljer"] is None
    assert await service.orders("sak1") == []


async def test_changed_ident_is_refused_as_locked_field(service: PaymentsService) -> None:
    await service.submit("k1", message(june(3, 14)))
    await _receipt(service, "sak1", "00")
    await service.submit("k2", message(june(3, 14), ident="10987654321"))
    status = await service.latest_status("k2")
    assert status.status == "FEILET"
    assert status.body["error"]["msg"] == "Kan ikke endre 'ident'"


async def test_same_key_same_content_is_answered_from_what_is_stored(
    service: PaymentsService,
) -> None:
    first = await service.submit("k1", message(june(3, 14)))
    again = await service.submit("k1", message(june(3, 14)))
    assert not first.duplicate and again.duplicate
    assert len(await service.orders("sak1")) == 1


async def test_same_key_other_content_is_refused(service: PaymentsService) -> None:
    await service.submit("k1", message(june(3, 14)))
    with pytest.raises(Conflict):
        await service.submit("k1", message(june(3, 13)))


async def test_empty_key_is_refused(service: PaymentsService) -> None:
    with pytest.raises(InvalidInput, match=r"1\.\.200 characters, not blank"):
        await service.submit(" ", message(june(3, 14)))
    with pytest.raises(InvalidInput, match="got 201"):
        await service.submit("k" * 201, message(june(3, 14)))
    with pytest.raises(InvalidInput, match="no Transaction-ID"):  # the broker's header missing
        await service.submit("", message(june(3, 14)))


async def test_later_message_waits_for_the_receipt_then_is_planned_on_confirmed_state(
    service: PaymentsService,
) -> None:
    await service.submit("k1", message(june(3, 14)))
    await service.submit("k2", message(june(3, 14, 200)))
    waiting = await service.latest_status("k2")
    assert waiting.status == "VENTER"
    assert waiting.created_at is not None  # when it was taken: it has no status row yet
    listed = [(r.original_key, r.status) for r in await service.statuses("sak1")]
    assert listed == [("k1", "MOTTATT"), ("k2", "VENTER")]  # the case page lists it too
    assert len(await service.orders("sak1")) == 1
    assert await _receipt(service, "sak1", "00") == "ok"
    assert (await service.latest_status("k1")).status == "OK"
    assert (await service.latest_status("k2")).status == "MOTTATT"
    orders = await service.orders("sak1")
    assert len(orders) == 2 and "<kodeEndring>ENDR</kodeEndring>" in orders[1].xml
    case = await service.case("sak1")
    assert case.active_uids is not None and len(case.active_uids) == 1


async def test_08_keeps_previous_state_and_releases_the_case(service: PaymentsService) -> None:
    await service.submit("k1", message(june(3, 14)))
    await _receipt(service, "sak1", "00")
    await service.submit("k2", message(june(3, 14, 200)))
    assert await _receipt(service, "sak1", "08 ", "Oppdraget finnes fra før") == "feilet"
    status = await service.latest_status("k2")
    assert status.status == "FEILET" and status.body["error"]["statusCode"] == 400
    case = await service.case("sak1")
    assert case.inflight_order is None
    assert case.utbetalinger[0].periods[0]["beløp"] == 100
    await service.submit("k3", message(june(3, 14, 300)))
    assert (await service.latest_status("k3")).status == "MOTTATT"


async def test_12_is_feilet_500_and_04_is_ok_with_warning(service: PaymentsService) -> None:
    await service.submit("k1", message(june(3, 14)))
    await _receipt(service, "sak1", "12", "teknisk feil")
    s1 = await service.latest_status("k1")
    assert s1.status == "FEILET" and s1.body["error"]["statusCode"] == 500
    await service.submit("k2", message(june(3, 14)))
    orders = await service.orders("sak1")
    assert "<kodeEndring>NY</kodeEndring>" in orders[-1].xml  # the first order never took
    await _receipt(service, "sak1", "04", "advarsel")
    s2 = await service.latest_status("k2")
    assert s2.status == "OK"
    assert s2.body["error"] == {
        "statusCode": 200,
        "msg": "advarsel",
        "doc": s2.body["error"]["doc"],
    }


async def test_receipt_for_unknown_order_is_kept(
    service: PaymentsService, pool: AsyncConnectionPool[Any]
) -> None:
    await service.submit("k1", message(june(3, 14)))
    orders = await service.orders("sak1")
    xml = build_receipt_xml(orders[0].xml.replace(orders[0].id.hex, "0" * 32), "00")
    assert await service.apply_receipt(codec.read_receipt(xml), xml) == "stray"
    assert await _count(pool, "stray_receipt") == 1
    assert (await service.latest_status("k1")).status == "MOTTATT"


async def test_second_receipt_is_ignored(service: PaymentsService) -> None:
    await service.submit("k1", message(june(3, 14)))
    await _receipt(service, "sak1", "00")
    assert await _receipt(service, "sak1", "08") == "duplicate"
    assert (await service.latest_status("k1")).status == "OK"


async def test_unchanged_message_is_bare_ok_and_sends_nothing(service: PaymentsService) -> None:
    await service.submit("k1", message(june(3, 14)))
    await _receipt(service, "sak1", "00")
    await service.submit("k2", message(june(3, 14)))
    status = await service.latest_status("k2")
    assert status.status == "OK" and status.body["detaljer"] is None
    assert len(await service.orders("sak1")) == 1


async def test_an_error_halfway_through_intake_leaves_no_rows(
    service: PaymentsService, pool: AsyncConnectionPool[Any]
) -> None:
    async with pool.connection() as conn:  # the database refuses the last write of the intake
        await conn.execute(
            "CREATE FUNCTION pay.refuse() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN RAISE EXCEPTION 'refused'; END $$;"
            " CREATE TRIGGER refuse BEFORE INSERT ON pay.status FOR EACH ROW"
            " WHEN (NEW.original_key = 'boom') EXECUTE FUNCTION pay.refuse()"
        )
    with pytest.raises(Exception, match="refused"):
        await service.submit("boom", message(june(3, 14)))
    for table in ("sak", "inbound", "oppdrag", "candidate", "status"):
        assert await _count(pool, table) == 0, table
    await service.submit("k1", message(june(3, 14)))  # the case is not stuck
    assert (await service.latest_status("k1")).status == "MOTTATT"


async def _lent_as_usual(pool: AsyncConnectionPool[Any]) -> int:
    """The pool's one connection is as the pool lends it: no transaction, autocommit off; its
    server process id."""
    async with pool.connection() as conn:
        assert conn.pgconn.transaction_status == TransactionStatus.IDLE
        assert conn.autocommit is False
        return conn.info.backend_pid


@pytest.mark.parametrize("refused", ["inbound", "status"])
async def test_intake_in_two_round_trips_rolls_back_either_and_lends_its_connection_back_clean(
    db_url: str, service: PaymentsService, refused: str
) -> None:
    # BEGIN goes with the intake and COMMIT with the store (autocommit, pipelined): a failure in
    # the first (the log) or the second (the statuses) leaves nothing, and the connection goes
    # back to the pool out of any transaction with autocommit off, as every other user expects
    pool = db.make_pool(db_url, min_size=1, max_size=1)  # one connection: the next user gets it
    await pool.open(wait=True)
    try:
        own = PaymentsService(pool=pool, settings=service.settings, client=service.client)
        kept = await _lent_as_usual(pool)
        async with pool.connection() as conn:
            await conn.execute(
                "CREATE FUNCTION pay.refuse() RETURNS trigger LANGUAGE plpgsql AS $$"
                " BEGIN RAISE EXCEPTION 'refused'; END $$;"
                f" CREATE TRIGGER refuse BEFORE INSERT ON pay.{refused} FOR EACH ROW"  # type: ignore[arg-type]
                " WHEN (NEW.original_key = 'boom') EXECUTE FUNCTION pay.refuse()"
            )
        with pytest.raises(Exception, match="refused"):
            await own.submit("boom", message(june(3, 14)))
        assert await _lent_as_usual(pool) == kept  # rolled back and kept, not replaced
        for table in ("sak", "inbound", "oppdrag", "candidate", "status"):
            assert await _count(pool, table) == 0, table
        await own.submit("k1", message(june(3, 14)))
        assert await _lent_as_usual(pool) == kept
        assert (await own.latest_status("k1")).status == "MOTTATT"
    finally:
        await pool.close()


async def test_concurrent_messages_of_one_case_get_one_order_and_wait_in_arrival_order(
    service: PaymentsService, pool: AsyncConnectionPool[Any]
) -> None:
    import asyncio

    keys = [f"c{i}" for i in range(6)]
    await asyncio.gather(
        *(service.submit(k, message(june(3, 14, 100 + i))) for i, k in enumerate(keys))
    )
    statuses = [(await service.latest_status(k)).status for k in keys]
    assert sorted(statuses) == ["MOTTATT"] + ["VENTER"] * 5
    for _ in keys[1:]:
        assert await _receipt(service, "sak1", "00") == "ok"
    await _receipt(service, "sak1", "00")
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT original_key FROM pay.inbound ORDER BY seq")
        arrival = [r["original_key"] for r in await cur.fetchall()]
    orders = await service.orders("sak1")
    assert [o.original_key for o in orders] == arrival  # planned in arrival order, none lost
    assert {(await service.latest_status(k)).status for k in keys} == {"OK"}


async def test_a_huge_sak_id_is_feilet_without_a_case_row(
    service: PaymentsService, pool: AsyncConnectionPool[Any]
) -> None:
    await service.submit("huge", message(june(3, 14), sakId="s" * 10_000))
    status = await service.latest_status("huge")
    assert status.status == "FEILET" and status.body["error"]["statusCode"] == 400
    assert await _count(pool, "sak") == 0


async def test_intake_waiting_for_the_case_lock_plans_on_the_receipt_committed_meanwhile(
    service: PaymentsService, pool: AsyncConnectionPool[Any]
) -> None:
    """The state is read after the case lock is held: an intake that waited behind a receipt's
    booking sees the state that booking confirmed (ENDR chained to it), not the state before."""
    from tether.payments import repository

    await service.submit("k1", message(june(3, 14)))
    (first,) = await service.orders("sak1")
    async with pool.connection() as booking:
        # the receipt's booking, holding the case lock while the next message arrives
        _, cases = await repository.lock_orders_and_cases(booking, ids=[first.id])
        bookings = Booking()
        ok = codec.read_receipt(build_receipt_xml(first.xml, "00"))
        await bookings.add(booking, first, ok, cases[("DAGPENGER", "sak1")])
        await bookings.flush(booking)
        intake = asyncio.create_task(service.submit("k2", message(june(3, 14, belop=200))))
        async with pool.connection() as probe:
            for _ in range(500):  # until the intake waits for the case row's lock
                cur = await probe.execute(
                    "SELECT count(*) AS n FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND query LIKE '%pay.intake%'"
                )
                row = await cur.fetchone()
                await probe.commit()  # the activity view is a snapshot per transaction
                if row is not None and row["n"] > 0:
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("the intake never waited for the case lock")
        assert not intake.done()
        await booking.commit()
    await intake
    assert (await service.latest_status("k2")).status == "MOTTATT"
    orders = await service.orders("sak1")
    assert len(orders) == 2
    assert "<kodeEndring>ENDR</kodeEndring>" in orders[1].xml
    assert "<refDelytelseId>" in orders[1].xml  # chained to the confirmed chain


async def test_receipts_booked_as_one_batch(
    service: PaymentsService, pool: AsyncConnectionPool[Any]
) -> None:
    """One transaction for the batch; each receipt keeps its own outcome and case rules."""
    await service.submit("a1", message(june(3, 7), sak="sakA"))
    await service.submit("a2", message(june(3, 14), sak="sakA", behandling="b2"))  # waits
    await service.submit("b1", message(june(3, 7), sak="sakB"))
    (a,), (b,) = await service.orders("sakA"), await service.orders("sakB")
    ok, feilet = build_receipt_xml(a.xml, "00"), build_receipt_xml(b.xml, "08")
    stray = build_receipt_xml(a.xml.replace(a.id.hex, "0" * 32), "00")
    batch = [(codec.read_receipt(x), x) for x in (ok, stray, feilet, ok)]
    assert await service.apply_receipts(batch) == ["ok", "stray", "feilet", "duplicate"]
    assert (await service.latest_status("a1")).status == "OK"
    assert (await service.latest_status("a2")).status == "MOTTATT"  # planned on the OK state
    assert (await service.latest_status("b1")).status == "FEILET"
    assert await _count(pool, "stray_receipt") == 1


async def _until_lock_wait(pool: AsyncConnectionPool[Any]) -> None:
    """Return once a session of this database waits for a row lock (bounded, not timed)."""
    async with pool.connection() as conn:
        await conn.set_autocommit(True)
        for _ in range(1000):
            cur = await conn.execute(
                "SELECT count(*) AS n FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            row = await cur.fetchone()
            assert row is not None
            if row["n"]:
                return
            await asyncio.sleep(0.01)
    raise AssertionError("the receipt never waited for the case lock")


async def test_a_message_queued_while_the_receipt_waits_for_its_case_is_planned(
    service: PaymentsService, pool: AsyncConnectionPool[Any]
) -> None:
    """An intake holds the case lock and logs a message behind the case's order in flight while
    that order's receipt waits for the lock: once the receipt has the case, it plans the message
    (the lock statement's snapshot predates the message; a stale read left it waiting forever)."""
    import hashlib

    await service.submit("k1", message(june(3, 7)))
    order = (await service.orders("sak1"))[-1]
    xml = build_receipt_xml(order.xml, "00")
    body = message(june(3, 14), behandling="b2")
    async with pool.connection() as intake:
        cur = await intake.execute(
            "SELECT logged, inflight_order FROM pay.intake_one('DAGPENGER', 'k2', %s, 'sak1', %s)",
            (hashlib.sha256(body).hexdigest(), body),
        )
        row = await cur.fetchone()
        assert row is not None and row["logged"] and row["inflight_order"] == order.id
        receipt = asyncio.create_task(service.apply_receipt(codec.read_receipt(xml), xml))
        await _until_lock_wait(pool)
        await intake.commit()  # k2 is logged 'waiting' behind k1's order
    assert await receipt == "ok"
    assert (await service.latest_status("k2")).status == "MOTTATT"
    assert [o.original_key for o in await service.orders("sak1")] == ["k1", "k2"]
