"""Receipt booking as one set-based statement (``service.Booking``): what it stores, in which
order, and that a batch drains its freed cases through the intake's own store statement."""

from __future__ import annotations

from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from tether.payments import codec, repository
from tether.payments.oppdrag import build_receipt_xml
from tether.payments.receipts import Booking
from tether.payments.service import PaymentsService

from .conftest import june, message


async def _statuses(pool: AsyncConnectionPool[Any], key: str) -> list[str]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT status FROM pay.status WHERE original_key = %s ORDER BY id", (key,)
        )
        return [r["status"] for r in await cur.fetchall()]


def _receipt(xml: str, code: str) -> tuple[codec.Receipt, str]:
    raw = build_receipt_xml(xml, code)
    return codec.read_receipt(raw), raw


async def test_a_batch_books_confirms_frees_and_drains_in_order(
    service: PaymentsService, pool: AsyncConnectionPool[Any]
) -> None:
    """Three cases in one batch: 00 confirms (uids, utbetalinger), 04 confirms with a warning,
    08 keeps the previous state; each case's waiting message is planned in the same
    transaction; statuses of a key stay in their order (HOS_OPPDRAG first: the receipt came
    before the sender's bookkeeping)."""
    for sak in ("sakA", "sakB", "sakC"):
        await service.submit(f"{sak}-1", message(june(3, 7), sak=sak))
        await service.submit(f"{sak}-2", message(june(3, 14), sak=sak, behandling="b2"))
    (a,), (b,), (c,) = [await service.orders(s) for s in ("sakA", "sakB", "sakC")]
    batch = [_receipt(c.xml, "08"), _receipt(a.xml, "00"), _receipt(b.xml, "04")]
    assert await service.apply_receipts(batch) == ["feilet", "ok", "ok"]

    for key in ("sakA-1", "sakB-1"):
        assert await _statuses(pool, key) == ["MOTTATT", "HOS_OPPDRAG", "OK"]
    assert await _statuses(pool, "sakC-1") == ["MOTTATT", "HOS_OPPDRAG", "FEILET"]
    warned = await service.latest_status("sakB-1")
    assert warned.body["error"] is not None  # 04: OK with the warning
    for sak, order in (("sakA", a), ("sakB", b)):
        view = await service.case(sak)
        assert view.active_uids == frozenset(order.uids) and view.inflight_order is not None
        assert {u.uid for u in view.utbetalinger} == set(order.uids)
    refused = await service.case("sakC")
    assert refused.active_uids in (None, frozenset()) and refused.utbetalinger == []
    # every case was freed and its waiting message planned: a second order each, MOTTATT
    for sak in ("sakA", "sakB", "sakC"):
        assert await _statuses(pool, f"{sak}-2") == ["MOTTATT"]
        orders = await service.orders(sak)
        assert [o.original_key for o in orders] == [f"{sak}-1", f"{sak}-2"]
        assert (await service.case(sak)).inflight_order == orders[1].id
    # sakA was confirmed: its next order changes the chain; sakC's first was refused: NY again
    assert "<kodeEndring>ENDR</kodeEndring>" in (await service.orders("sakA"))[1].xml
    assert "<kodeEndring>NY</kodeEndring>" in (await service.orders("sakC"))[1].xml


async def test_a_case_booked_twice_in_one_booking_is_booked_in_order(
    service: PaymentsService, pool: AsyncConnectionPool[Any]
) -> None:
    """Two bookings of one case in one ``Booking`` (two orders not yet final, as a repair by
    hand could leave them) are two statements in order, so the later one wins, as booking them
    one by one would: one statement would update the case row from either at random."""
    await service.submit("k1", message(june(3, 7)))
    (first,) = await service.orders("sak1")
    await service.apply_receipts([_receipt(first.xml, "08")])  # refused: the case is free
    await service.submit("k2", message(june(3, 14), behandling="b2"))
    second = (await service.orders("sak1"))[1]
    async with pool.connection() as conn:
        _, cases = await repository.lock_orders_and_cases(conn, ids=[first.id, second.id])
        booking = Booking()
        case = cases[("DAGPENGER", "sak1")]
        _, case = await booking.add(conn, second, _receipt(second.xml, "00")[0], case)
        _, case = await booking.add(conn, first, _receipt(first.xml, "08")[0], case)
        assert len(booking.rows) == 1  # the first booking was flushed before the second
        await booking.flush(conn)
    view = await service.case("sak1")
    assert view.active_uids == frozenset(second.uids)  # the 08 after it left the state as is
    assert view.inflight_order is None and case.inflight_order is None
    assert case.active_uids == frozenset(second.uids)


async def _send_claim(pool: AsyncConnectionPool[Any], sak: str) -> list[tuple[int, bool]]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT send_attempts, coalesce(claimed_until > now(), false) AS claimed"
            " FROM pay.oppdrag WHERE sak_id = %s ORDER BY created_at",
            (sak,),
        )
        return [(r["send_attempts"], r["claimed"]) for r in await cur.fetchall()]


async def test_orders_a_receipt_batch_plans_go_to_the_local_sender_claimed(
    service: PaymentsService, pool: AsyncConnectionPool[Any]
) -> None:
    """With a sender in the process (``send_here``), the order planned for a freed case is
    stored claimed by it (one attempt, held until the claim would expire, as
    ``claim_due_orders`` leaves a claimed row) and handed to it once; without one, it is
    stored due for any sender to claim."""
    for sak in ("sakA", "sakB"):
        await service.submit(f"{sak}-1", message(june(3, 7), sak=sak))
        await service.submit(f"{sak}-2", message(june(3, 14), sak=sak, behandling="b2"))
    (a,), (b,) = await service.orders("sakA"), await service.orders("sakB")

    await service.apply_receipts([_receipt(a.xml, "00")])  # no sender here
    assert await _send_claim(pool, "sakA") == [(0, False), (0, False)]
    assert service.take_handed() == []

    service.send_here()
    await service.apply_receipts([_receipt(b.xml, "00")])
    assert await _send_claim(pool, "sakB") == [(0, False), (1, True)]
    (handed,) = service.take_handed()
    stored = (await service.orders("sakB"))[1]
    assert (handed.id, handed.xml, handed.original_key) == (stored.id, stored.xml, "sakB-2")
    assert handed.send_attempts == 1 and handed.message_id == str(stored.id)
    assert service.take_handed() == []  # handed once
    async with pool.connection() as conn:  # another sender claims only the unclaimed one
        claimed = await repository.claim_due_orders(conn, limit=10, dead_s=30)
        await conn.commit()
    assert [o.original_key for o in claimed] == ["sakA-2"]


async def test_a_sender_round_takes_handed_and_due_orders_together(
    service: PaymentsService, pool: AsyncConnectionPool[Any], nats_url: str
) -> None:
    """A round of ``send_orders`` sends what was handed to it and claims what is due besides,
    so orders stored by an intake elsewhere are not starved by a steady flow of receipts."""
    import asyncio

    from tether.payments.tasks import send_orders

    service.send_here()
    await service.submit("sakB-1", message(june(3, 7), sak="sakB"))
    await service.submit("sakB-2", message(june(3, 14), sak="sakB", behandling="b2"))
    (b,) = await service.orders("sakB")
    await service.apply_receipts([_receipt(b.xml, "00")])  # sakB-2 planned and handed
    await service.submit("sakA-1", message(june(3, 7), sak="sakA"))  # due, for any sender
    assert await _send_claim(pool, "sakA") == [(0, False)]
    sent = await send_orders(service, nats_url, stop=asyncio.Event(), once=True)
    assert sent == 2
    for key in ("sakA-1", "sakB-2"):
        assert await _statuses(pool, key) == ["MOTTATT", "HOS_OPPDRAG"]
    async with pool.connection() as conn:  # one round: marked sent in one transaction
        cur = await conn.execute(
            "SELECT count(DISTINCT sent_at) AS rounds FROM pay.oppdrag"
            " WHERE original_key IN ('sakA-1', 'sakB-2')"
        )
        row = await cur.fetchone()
    assert row is not None and row["rounds"] == 1
    assert service.take_handed() == []


async def test_a_receipt_batch_locks_its_orders_without_their_xml(
    service: PaymentsService, pool: AsyncConnectionPool[Any]
) -> None:
    """Booking reads an order's head; the XML, stored out of line (migration 0007), would be
    fetched from the TOAST table for every receipt and dropped."""
    await service.submit("k1", message(june(3, 14)))
    (order,) = await service.orders("sak1")
    async with pool.connection() as conn, conn.transaction():
        orders, cases = await repository.lock_orders_and_cases(conn, ids=[order.id])
    head = orders[order.id]
    assert not hasattr(head, "xml")
    assert (head.state, head.original_key, head.uids) == ("MOTTATT", "k1", order.uids)
    assert list(cases) == [("DAGPENGER", "sak1")]


async def test_a_batch_drains_only_the_cases_a_message_waits_on(
    service: PaymentsService, pool: AsyncConnectionPool[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``book_receipts`` reads which freed cases have a waiting message: those are drained
    (their messages planned, in order), the others are not looked at again, and a batch where
    no message waits sends no ``take_waiting`` at all (the usual batch: one message a case)."""
    taken: list[list[tuple[str, str]]] = []
    take_waiting = repository.take_waiting

    async def spy(conn: Any, *, keys: list[tuple[str, str]]) -> Any:
        taken.append(list(keys))
        return await take_waiting(conn, keys=keys)

    monkeypatch.setattr(repository, "take_waiting", spy)
    for sak in ("sakA", "sakB", "sakC"):
        await service.submit(f"{sak}-1", message(june(3, 7), sak=sak))
    for sak in ("sakA", "sakC"):  # queued behind the case's order
        await service.submit(f"{sak}-2", message(june(3, 14), sak=sak, behandling="b2"))
    firsts = [(await service.orders(s))[0] for s in ("sakA", "sakB", "sakC")]
    assert await service.apply_receipts([_receipt(o.xml, "00") for o in firsts]) == ["ok"] * 3
    assert taken == [[("DAGPENGER", "sakA"), ("DAGPENGER", "sakC")]]
    for sak in ("sakA", "sakC"):
        assert await _statuses(pool, f"{sak}-2") == ["MOTTATT"]
        assert [o.original_key for o in await service.orders(sak)] == [f"{sak}-1", f"{sak}-2"]

    await service.submit("sakB-2", message(june(3, 14), sak="sakB", behandling="b2"))
    seconds = [(await service.orders(s))[1] for s in ("sakA", "sakB", "sakC")]
    assert await service.apply_receipts([_receipt(o.xml, "00") for o in seconds]) == ["ok"] * 3
    assert len(taken) == 1  # nothing waited: no take_waiting
    for sak in ("sakA", "sakB", "sakC"):
        assert await _statuses(pool, f"{sak}-2") == ["MOTTATT", "HOS_OPPDRAG", "OK"]
        assert (await service.case(sak)).inflight_order is None
