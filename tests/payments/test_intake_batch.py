"""Intake in batches (the broker's fetched batch, concurrent HTTP intakes): one transaction for
many messages, with every per-message and per-case rule of the one-message intake."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from tether.core.errors import Conflict, InvalidInput
from tether.payments import codec, intake, repository
from tether.payments.client import OppdragClient
from tether.payments.oppdrag import build_receipt_xml
from tether.payments.records import CaseRow, IntakeRow, Submission
from tether.payments.service import PaymentsService

from .conftest import june, message, unique_settings


async def _states(pool: AsyncConnectionPool[Any]) -> dict[str, str]:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT original_key, state FROM pay.inbound")
        return {r["original_key"]: r["state"] for r in await cur.fetchall()}


async def test_a_batch_keeps_each_message_its_own_outcome_and_each_case_its_order(
    service: PaymentsService, pool: AsyncConnectionPool[Any]
) -> None:
    b1 = message(june(3, 7), sak="sakB")
    outcomes = await service.submit_many(
        [
            ("a1", message(june(3, 7), sak="sakA")),
            ("a2", message(june(3, 14), sak="sakA", behandling="b2")),  # behind a1's order
            ("b1", b1),
            ("bad", b"{not json"),
            ("b1", b1),  # the same key and content again: a duplicate, no second order
            ("a1", message(june(3, 21), sak="sakA")),  # the key again, other content
            ("", b1),  # no key
        ]
    )
    assert outcomes[:4] == [Submission(key=k) for k in ("a1", "a2", "b1", "bad")]
    assert outcomes[4] == Submission(key="b1", duplicate=True)
    assert isinstance(outcomes[5], Conflict)
    assert isinstance(outcomes[6], InvalidInput)
    assert (await service.latest_status("a1")).status == "MOTTATT"
    assert (await service.latest_status("a2")).status == "VENTER"
    assert (await service.latest_status("b1")).status == "MOTTATT"
    assert (await service.latest_status("bad")).status == "FEILET"
    assert len(await service.orders("sakA")) == 1
    assert len(await service.orders("sakB")) == 1
    assert (await _states(pool))["a2"] == "waiting"
    (a,) = await service.orders("sakA")
    xml = build_receipt_xml(a.xml, "00")
    assert await service.apply_receipt(codec.read_receipt(xml), xml) == "ok"
    assert (await service.latest_status("a2")).status == "MOTTATT"  # planned on a1's state
    assert "<kodeEndring>ENDR</kodeEndring>" in (await service.orders("sakA"))[1].xml


async def test_a_message_that_changes_nothing_leaves_its_case_free_for_the_next_in_the_batch(
    service: PaymentsService,
) -> None:
    await service.submit("k1", message(june(3, 14)))
    (first,) = await service.orders("sak1")
    xml = build_receipt_xml(first.xml, "00")
    await service.apply_receipt(codec.read_receipt(xml), xml)
    await service.submit_many(
        [
            ("k2", message(june(3, 14))),  # the same content under a new key: nothing changed
            ("k3", message(june(3, 14, belop=200))),
            ("k4", message(june(3, 14, belop=300))),  # behind k3's order
        ]
    )
    assert (await service.latest_status("k2")).status == "OK"
    assert (await service.latest_status("k3")).status == "MOTTATT"
    assert (await service.latest_status("k4")).status == "VENTER"
    orders = await service.orders("sak1")
    assert [o.original_key for o in orders] == ["k1", "k3"]
    assert "<refDelytelseId>" in orders[1].xml  # chained to the state k1's receipt confirmed


async def test_a_batch_logs_each_key_and_body_byte_for_byte(
    service: PaymentsService, pool: AsyncConnectionPool[Any]
) -> None:
    # the batch's arrays go to the database in binary: keys and bodies with the characters a
    # text array quotes or escapes (quotes, backslashes, braces, commas, spaces, NULL) and a body
    # that is not UTF-8 come back exactly as sent
    sent = [
        ('k "1"\\ {a,b}', message(june(3, 7), sak="sak\\{1}")),
        ("NULL", message(june(3, 7), sak='sak "2", x')),
        (" k3 ", b"\xff\xfe\x00 not json \\x00"),
        ("k4", message(june(3, 7), sak="sak4")),
    ]
    outcomes = await service.submit_many(sent)
    assert outcomes == [Submission(key=k) for k, _ in sent]
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT original_key, sak_id, body FROM pay.inbound ORDER BY seq")
        rows = await cur.fetchall()
    assert [(r["original_key"], bytes(r["body"])) for r in rows] == sent
    assert [r["sak_id"] for r in rows] == ["sak\\{1}", 'sak "2", x', None, "sak4"]
    assert (await service.latest_status(" k3 ")).status == "FEILET"
    assert (await service.latest_status("NULL")).status == "MOTTATT"


async def test_concurrent_http_intakes_of_one_case_keep_its_rules(
    service: PaymentsService, pool: AsyncConnectionPool[Any]
) -> None:
    """Twenty concurrent intakes (group commit): every new case gets its order, and of one
    case's two messages exactly one is planned and the other waits behind it."""
    bodies = [(f"c{i}", message(june(3, 7), sak=f"sak{i}")) for i in range(20)]
    bodies += [("x1", message(june(3, 7), sak="sakX")), ("x2", message(june(3, 14), sak="sakX"))]
    await asyncio.gather(*(service.submit(k, b) for k, b in bodies))
    statuses = {k: (await service.latest_status(k)).status for k, _ in bodies}
    assert all(statuses[f"c{i}"] == "MOTTATT" for i in range(20))
    assert sorted([statuses["x1"], statuses["x2"]]) == ["MOTTATT", "VENTER"]
    assert len(await service.orders("sakX")) == 1
    states = await _states(pool)
    assert sorted([states["x1"], states["x2"]]) == ["done", "waiting"]


@pytest.mark.parametrize(("parallel", "transactions"), [(1, 2), (2, 3)])
async def test_intake_parallel_caps_the_transactions_of_an_api_process_at_once(
    pool: AsyncConnectionPool[Any], parallel: int, transactions: int
) -> None:
    """Six requests, one after another, while the first one's transaction is held up: one at a
    time, the other five wait and share the next transaction; two at a time, the second request
    starts its own at once and the other four share the third."""
    own = unique_settings(intake_parallel=parallel)
    async with OppdragClient.from_settings(own) as client:
        service = PaymentsService(pool=pool, settings=own, client=client)
        async with pool.connection() as blocker, blocker.transaction():
            await blocker.execute("LOCK TABLE pay.inbound IN SHARE ROW EXCLUSIVE MODE")
            submits = []
            for i in range(6):
                body = message(june(3, 7), sak=f"par{parallel}-{i}")
                submits.append(asyncio.create_task(service.submit(f"p{parallel}-{i}", body)))
                await asyncio.sleep(0.05)  # each arrives on its own
            assert not any(t.done() for t in submits)  # all held up behind the lock
        await asyncio.gather(*submits)
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(DISTINCT xmin::text) FROM pay.inbound WHERE original_key LIKE %s",
            (f"p{parallel}-%",),
        )
        assert await cur.fetchone() == {"count": transactions}


async def test_a_batch_of_one_reads_what_the_batch_function_reads(
    service: PaymentsService, pool: AsyncConnectionPool[Any]
) -> None:
    """``pay.intake_one`` (a batch of one) answers as ``pay.intake_batch`` does, in each state
    a message can meet: new case, case in flight, confirmed case, duplicate, reused key, no
    case (unreadable); both are tried on the same state and rolled back, then it is stored."""

    class RolledBack(Exception):
        pass

    async def both(key: str, raw: bytes) -> list[dict[str, Any]]:
        item = intake.prepare(key, raw)
        found: dict[int, Any] = {}
        for n in (1, 2):
            try:
                async with pool.connection() as conn, conn.transaction():
                    if n == 1:
                        (row,) = await repository.intake_batch(
                            conn,
                            fagsystem="DAGPENGER",
                            keys=[key],
                            hashes=[item.digest],
                            sak_ids=[item.msg.sak_id if item.msg else None],
                            bodies=[raw],
                        )
                    else:
                        cur = await conn.execute(
                            "SELECT * FROM pay.intake_batch('DAGPENGER', %s, %s, %s, %s)",
                            ([key], [item.digest], [item.msg.sak_id if item.msg else None], [raw]),
                        )
                        batch = await cur.fetchone()
                        assert batch is not None
                        row = IntakeRow(
                            logged=batch["logged"],
                            seen_hash=batch["seen_hash"],
                            case=None
                            if item.msg is None
                            else CaseRow.from_row(
                                {**batch, "fagsystem": "DAGPENGER", "sak_id": item.msg.sak_id}
                            ),
                            confirmed=batch["confirmed"],
                        )
                    found[n] = (
                        row.logged,
                        row.seen_hash,
                        row.case,
                        row.confirmed if row.logged else None,
                    )
                    raise RolledBack
            except RolledBack:
                pass
        assert found[1] == found[2]
        await intake.store(pool, [item])
        return [found[1]]

    first = message(june(3, 7))
    await both("k1", first)  # a new case
    await both("k2", message(june(3, 14), behandling="b2"))  # behind k1's order
    await both("k1", first)  # a duplicate
    await both("k1", message(june(3, 21)))  # a reused key
    await both("bad", b"{not json")  # no case
    (order,) = await service.orders("sak1")
    xml = build_receipt_xml(order.xml, "00")
    await service.apply_receipt(codec.read_receipt(xml), xml)
    (order2,) = [o for o in await service.orders("sak1") if o.original_key == "k2"]
    xml = build_receipt_xml(order2.xml, "00")
    await service.apply_receipt(codec.read_receipt(xml), xml)
    ((logged, _, case, confirmed),) = await both("k3", message(june(3, 28), behandling="b3"))
    assert logged and case is not None and case.has_order_before and confirmed  # confirmed case


def test_the_stored_json_of_planned_orders_reads_back_as_the_orders() -> None:
    """``repository.json_text`` (the intake's encoder for ``::jsonb`` parameters) writes the
    values ``json.dumps`` wrote: XML with quotes and markup, non-ASCII text, nested lists."""
    import json
    import uuid

    item = intake.prepare("k-æøå", message(june(3, 14), sak="sak-ø", behandling='b"1<'))
    assert item.msg is not None
    planned = intake.plan_safely(item.key, item.msg, None, uuid.uuid4())
    assert isinstance(planned, codec.Planned) and planned.xml is not None
    batch = intake.Planner()
    batch._order(0, item.key, item.msg.sak_id, uuid.uuid4(), planned)
    encoded = repository.json_text(batch.orders)
    assert json.loads(encoded) == json.loads(json.dumps(batch.orders))
    assert json.loads(encoded)[0]["xml"] == planned.xml


async def test_the_batch_function_answers_row_by_row_in_arrival_order(
    service: PaymentsService, pool: AsyncConnectionPool[Any]
) -> None:
    """``pay.intake_batch`` row by row: a case's first message of the batch carries its state,
    later ones do not; a key met again in the batch (or logged before) is not logged twice and
    says what its first content was; a case with an order in flight logs 'waiting'; the log's
    order is the batch's."""
    await service.submit("x1", message(june(3, 7), sak="sakX"))  # sakX: an order in flight
    raw = {k: message(june(3, 7), sak=s) for k, s in (("a1", "sakA"), ("x2", "sakX"))}
    raw["a2"] = message(june(3, 14), sak="sakA", behandling="b2")
    batch = [("a1", "sakA"), ("x2", "sakX"), ("a1", "sakA"), ("a2", "sakA"), ("x1", "sakX")]
    bodies = [raw.get(k, b"{}") for k, _ in batch]
    hashes = [f"h-{k}" for k, _ in batch]
    async with pool.connection() as conn:
        rows = await repository.intake_batch(
            conn,
            fagsystem="DAGPENGER",
            keys=[k for k, _ in batch],
            hashes=hashes,
            sak_ids=[s for _, s in batch],
            bodies=bodies,
        )
        cur = await conn.execute("SELECT original_key, state FROM pay.inbound ORDER BY seq")
        log = [(r["original_key"], r["state"]) for r in await cur.fetchall()]
        await conn.commit()
    assert [r.logged for r in rows] == [True, True, False, True, False]
    assert [r.seen_hash for r in rows] == [None, None, "h-a1", None, await _hash_of(pool, "x1")]
    cases = [r.case for r in rows]
    assert all(c is not None for c in cases)
    assert [c.inflight_order is not None for c in cases if c] == [False, True, False, False, True]
    assert [r.confirmed for r in rows] == [{}, {}, None, None, None]  # first of each case only
    assert log == [("x1", "done"), ("a1", "done"), ("x2", "waiting"), ("a2", "done")]


async def _hash_of(pool: AsyncConnectionPool[Any], key: str) -> str:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT content_hash FROM pay.inbound WHERE original_key = %s", (key,)
        )
        row = await cur.fetchone()
        assert row is not None
        return str(row["content_hash"])
