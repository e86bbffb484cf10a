"""The hot batch statements keep one plan per session (migration 0014), and that plan reaches
every pay table by key whatever the table's size and statistics were when it was made.

The worst cases: plans made while the tables were empty and never analyzed, or tiny and freshly
analyzed, then a burst of 50,000 rows that no ANALYZE follows (nothing invalidates the plans). A
batch and its receipts must still read only their own rows.
"""

from __future__ import annotations

import asyncio
from typing import Any, LiteralString

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from tether.core import db
from tether.payments import codec, intake, repository
from tether.payments.client import OppdragClient
from tether.payments.oppdrag import build_receipt_xml
from tether.payments.service import PaymentsService
from tether.payments.statuses import STATUS_BATCH

from .conftest import june, message, unique_settings

TABLES = ("sak", "inbound", "oppdrag", "candidate", "utbetaling", "status")
FUNCTIONS = ("intake_batch", "intake_one", "store_intake", "lock_orders", "lock_cases")
# the sender's and the status publisher's (migration 0015)
SENDING = ("claim_due_orders", "mark_orders_sent", "claim_status_window")
BURST = 50_000
READS: LiteralString = (
    "SELECT t.relname, t.seq_scan, coalesce(t.seq_tup_read, 0) + coalesce(t.idx_tup_fetch, 0),"
    " (SELECT coalesce(sum(i.idx_tup_read), 0) FROM pg_stat_user_indexes i"
    "  WHERE i.relid = t.relid)"
    " FROM pg_stat_user_tables t WHERE t.schemaname = 'pay'"
)


def _reads(db_url: str) -> dict[str, tuple[int, int, int]]:
    """Per pay table: sequential scans, rows read, index entries read."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        return {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in conn.execute(READS)}


async def _round(service: PaymentsService, tag: str, saks: list[str], amount: int) -> None:
    """A batch of messages (one per case; a change where the case paid before), a sender's
    claim and its orders marked sent, then their receipts as one batch; then one message alone
    and its receipt; then the statuses' pages claimed as the publisher claims them."""
    batch = [(f"{tag}-{s}", message(june(3, 7, amount), sak=s)) for s in saks[:-1]]
    await intake.store(service.pool, [intake.prepare(k, raw) for k, raw in batch])
    async with db.autocommit(service.pool) as conn:
        await repository.claim_due_orders(conn, limit=len(batch), dead_s=30.0)
        await repository.book_sends(conn, sent=await _inflight(conn, saks[:-1]))
    await intake.store(service.pool, [intake.prepare(f"{tag}-1", message(june(3, 7, amount)))])
    await _book(service, saks)
    while True:
        async with db.transaction(service.pool) as conn:
            page = await repository.claim_status_window(conn, limit=STATUS_BATCH)
            assert page is not None
            await repository.move_status_cursor(conn, page)
        if len(page.rows) < STATUS_BATCH:
            break


async def _inflight(conn: Any, saks: list[str]) -> list[Any]:
    cur = await conn.execute(  # the cases' orders in flight, by key
        "SELECT inflight_order AS id FROM pay.sak WHERE sak_id = ANY(%s)"
        " AND fagsystem = 'DAGPENGER'",
        (saks,),
    )
    return [r["id"] for r in await cur.fetchall()]


async def _book(service: PaymentsService, saks: list[str]) -> None:
    async with service.pool.connection() as conn:
        cur = await conn.execute(  # the cases' orders in flight, by key
            "SELECT o.xml FROM pay.sak s JOIN pay.oppdrag o ON o.id = s.inflight_order"
            " WHERE s.sak_id = ANY(%s) AND s.fagsystem = 'DAGPENGER' ORDER BY o.id",
            (saks,),
        )
        xmls = [build_receipt_xml(r["xml"], "00") for r in await cur.fetchall()]
    assert len(xmls) == len(saks)
    *many, one = xmls
    booked = await service.apply_receipts([(codec.read_receipt(x), x) for x in many])
    assert booked == ["ok"] * len(many)
    assert await service.apply_receipt(codec.read_receipt(one), one) == "ok"


def _burst(db_url: str) -> None:
    """50,000 rows in each table the batches read, no ANALYZE after (autovacuum is off)."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO pay.sak (fagsystem, sak_id, has_order_before)"
            " SELECT 'DAGPENGER', 'b' || g, true FROM generate_series(1, %s) g",
            (BURST,),
        )
        conn.execute(
            "INSERT INTO pay.inbound (original_key, content_hash, fagsystem, sak_id, body, state)"
            " SELECT 'b' || g, '', 'DAGPENGER', 'b' || (g %% 500), '\\x', CASE WHEN g %% 10 = 0"
            " THEN 'waiting' ELSE 'done' END FROM generate_series(1, %s) g",
            (BURST,),
        )
        conn.execute(
            "INSERT INTO pay.oppdrag (id, fagsystem, sak_id, original_key, xml, sha256, uids,"
            " details, state, message_id, send_due_at)"
            " SELECT gen_random_uuid(), 'DAGPENGER', 'b' || g, 'b' || g, '<oppdrag/>', '', '{}',"
            " '{}', 'MOTTATT', 'b' || g, now() FROM generate_series(1, %s) g",
            (BURST,),
        )
        conn.execute(
            "INSERT INTO pay.candidate (oppdrag_id, uid, klassekode, periods, last_line_id,"
            " last_line, data) SELECT id, 'u', 'K', '[]', 'l', '{}', '{}' FROM pay.oppdrag"
            " WHERE original_key LIKE 'b%'"
        )
        conn.execute(
            "INSERT INTO pay.utbetaling (uid, fagsystem, sak_id, klassekode, periods,"
            " last_line_id, last_line, data) SELECT 'b' || g, 'DAGPENGER', 'b' || (g %% 500),"
            " 'K', '[]', 'l', '{}', '{}' FROM generate_series(1, %s) g",
            (BURST,),
        )
        conn.execute(  # published long ago: in every window's done snapshot
            "INSERT INTO pay.status (original_key, status, body, txid)"
            " SELECT 'b' || g, 'OK', '{}', '3' FROM generate_series(1, %s) g",
            (BURST,),
        )


async def _settled(
    db_url: str, pool: AsyncConnectionPool[Any], before: dict[str, tuple[int, int, int]] | None
) -> dict[str, tuple[int, int, int]]:
    """The statistics once the pool's backend reported them (forced when it goes idle): a
    second later, or (``before``) once they differ from those."""
    async with pool.connection() as conn:
        await conn.execute("SELECT pg_stat_force_next_flush()")
    if before is None:
        await asyncio.sleep(1)
        return _reads(db_url)
    for _ in range(50):
        await asyncio.sleep(0.1)
        now = _reads(db_url)
        if now != before:
            return now
    raise AssertionError("the batches' table statistics never arrived")


@pytest.mark.parametrize("analyzed", [False, True], ids=["empty", "tiny-analyzed"])
async def test_plans_made_on_small_tables_still_read_by_key_after_a_burst(
    db_url: str, analyzed: bool
) -> None:
    """Plans made on empty tables never analyzed (the planner guesses their size: with seq
    scans off it read a whole index by its second column, fagsystem = $1), or on tiny analyzed
    ones (where a seq scan is cheapest)."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        for table in TABLES:
            conn.execute(f"ALTER TABLE pay.{table} SET (autovacuum_enabled = false)")
    saks = [f"t{i}" for i in range(8)] + ["sak1"]
    settings = unique_settings()
    pool = db.make_pool(db_url, min_size=1, max_size=1)  # one backend: its plans are kept
    await pool.open(wait=True)
    try:
        async with OppdragClient.from_settings(settings) as client:
            service = PaymentsService(pool=pool, settings=settings, client=client)
            await _round(service, "first", saks, 100)  # plans made on the empty tables
            if analyzed:  # a new backend, its plans made on a few rows, analyzed
                await pool.close()
                with psycopg.connect(db_url, autocommit=True) as conn:
                    conn.execute("ANALYZE " + ", ".join(f"pay.{t}" for t in TABLES))
                pool = db.make_pool(db_url, min_size=1, max_size=1)
                await pool.open(wait=True)
                service = PaymentsService(pool=pool, settings=settings, client=client)
            await _round(service, "small", saks, 200)
            await _round(service, "warm", saks, 300)
            _burst(db_url)
            before = await _settled(db_url, pool, None)
            await _round(service, "burst", saks, 400)  # nine changes of confirmed cases
            after = await _settled(db_url, pool, before)
            async with pool.connection() as conn:
                cur = await conn.execute("SELECT statement FROM pg_prepared_statements")
                prepared = " ".join(r["statement"] for r in await cur.fetchall())
    finally:
        await pool.close()
    for table in TABLES:
        scans, rows, entries = (a - b for a, b in zip(after[table], before[table], strict=True))
        # by key: tens of rows; a scan of the table or of an index on its second column 50,000
        assert scans == 0, f"pay.{table} scanned {scans} times"
        assert rows < 500, f"pay.{table}: {rows} rows read"
        assert entries < 500, f"pay.{table}: {entries} index entries read"
    for function in (*FUNCTIONS, "book_receipts", *SENDING):
        assert f"pay.{function}(" in prepared  # the calls are not parsed again either


def test_the_batch_functions_keep_one_plan_without_sequential_scans(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT proname, proconfig FROM pg_proc"
            " WHERE pronamespace = 'pay'::regnamespace AND proname = ANY(%s)",
            ([*FUNCTIONS, "book_receipts", *SENDING],),
        ).fetchall()
    assert {r[0] for r in rows} == {*FUNCTIONS, "book_receipts", *SENDING}
    for name, config in rows:
        assert set(config or ()) >= {"plan_cache_mode=force_generic_plan", "enable_seqscan=off"}, (
            name
        )
