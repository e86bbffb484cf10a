"""The batch intake and the receipt batches find their cases by key on a large table that was
never analyzed.

The tables start empty and fill fast; until autovacuum first analyzes them, a plan cached while
a table was small, or one that looks a case up by fagsystem alone (every case matches), reads
the whole table for every batch, more as it grows (migration 0006).
"""

from __future__ import annotations

import asyncio
from typing import LiteralString

import psycopg

from tether.core import db
from tether.payments import codec, intake, repository
from tether.payments.client import OppdragClient
from tether.payments.oppdrag import build_receipt_xml
from tether.payments.service import PaymentsService

from .conftest import june, message, unique_settings

CASES = 50_000


def _counter(db_url: str, query: LiteralString) -> int:
    """One figure of the statistics views, read in a session of its own."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return int(row[0])


def _case_rows_read(db_url: str) -> int:
    return _counter(
        db_url,
        "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)"
        " FROM pg_stat_user_tables WHERE schemaname = 'pay' AND relname = 'sak'",
    )


async def _reads_after(db_url: str, before: int) -> int:
    """The rows of pay.sak read since ``before``, once the intake's backend reported them (it
    reports when it goes idle, forced by ``pg_stat_force_next_flush``)."""
    for _ in range(50):
        now = _case_rows_read(db_url)
        if now != before:
            return now - before
        await asyncio.sleep(0.1)
    raise AssertionError("the intake's table statistics never arrived")


async def _intake_and_book(service: PaymentsService, tag: str) -> None:
    """A batch of 50 first orders on new cases, then their receipts as one batch."""
    batch = [(f"{tag}-{i}", message(june(3, 7), sak=f"{tag}{i}")) for i in range(50)]
    await intake.store(service.pool, [intake.prepare(k, raw) for k, raw in batch])
    async with service.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT xml FROM pay.oppdrag WHERE original_key LIKE %s", (f"{tag}-%",)
        )
        xmls = [build_receipt_xml(r["xml"], "00") for r in await cur.fetchall()]
    booked = await service.apply_receipts([(codec.read_receipt(x), x) for x in xmls])
    assert booked == ["ok"] * 50


async def _flush(service: PaymentsService) -> None:
    async with service.pool.connection() as conn:
        await conn.execute("SELECT pg_stat_force_next_flush()")


async def test_batches_read_their_own_cases_not_the_whole_table(db_url: str) -> None:
    pool = db.make_pool(db_url, min_size=1, max_size=1)  # one backend: its plans are cached
    await pool.open(wait=True)
    settings = unique_settings()
    try:
        async with OppdragClient.from_settings(settings) as client:
            service = PaymentsService(pool=pool, settings=settings, client=client)
            for n in range(7):  # past the five calls after which a generic plan may be cached
                await _intake_and_book(service, f"warm{n}-")
            with psycopg.connect(db_url, autocommit=True) as conn:  # a burst of new cases
                conn.execute(
                    "INSERT INTO pay.sak (fagsystem, sak_id)"
                    " SELECT 'DAGPENGER', 'old' || g FROM generate_series(1, %s) g",
                    (CASES,),
                )
            await _flush(service)
            await asyncio.sleep(1)
            before = _case_rows_read(db_url)
            await _intake_and_book(service, "last-")
            await _flush(service)
            read = await _reads_after(db_url, before)
    finally:
        await pool.close()
    # 50 new cases, each looked up a few times; a scan of every case reads 50,400 each time
    assert read < CASES // 10, f"a batch of 50 and its receipts read {read} rows of pay.sak"


def _due_index_blocks(db_url: str) -> int:
    return _counter(
        db_url,
        "SELECT coalesce(idx_blks_hit, 0) + coalesce(idx_blks_read, 0)"
        " FROM pg_statio_user_indexes WHERE schemaname = 'pay' AND indexrelname = 'oppdrag_due'",
    )


async def test_marking_orders_sent_finds_them_by_key_not_through_the_due_index(
    db_url: str,
) -> None:
    # 20,000 orders stored and sent since the last vacuum: the partial index oppdrag_due
    # (state MOTTATT) still holds an entry for each; the old statement scanned all of them
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE pay.oppdrag SET (autovacuum_enabled = false)")
        conn.execute(
            "INSERT INTO pay.oppdrag (id, fagsystem, sak_id, original_key, xml, sha256, uids,"
            " details, state, message_id, send_due_at)"
            " SELECT gen_random_uuid(), 'DAGPENGER', 's' || g, 'k' || g, '<oppdrag/>', '', '{}',"
            " '{}', 'MOTTATT', 'm' || g, now() FROM generate_series(1, 20000) g"
        )
        conn.execute("UPDATE pay.oppdrag SET state = 'HOS_OPPDRAG', send_due_at = NULL")
        rows = conn.execute(
            "INSERT INTO pay.oppdrag (id, fagsystem, sak_id, original_key, xml, sha256, uids,"
            " details, state, message_id, send_due_at)"
            " SELECT gen_random_uuid(), 'DAGPENGER', 'new' || g, 'new' || g, '<oppdrag/>', '',"
            " '{}', '{}', 'MOTTATT', 'new' || g, now() FROM generate_series(1, 5) g RETURNING id"
        ).fetchall()
    ids = [r[0] for r in rows]
    pool = db.make_pool(db_url, min_size=1, max_size=1)  # one backend: its plans are cached
    await pool.open(wait=True)
    try:
        before = _due_index_blocks(db_url)
        marked = []
        for _ in range(8):  # past the five calls after which a generic plan may be cached
            async with db.autocommit(pool) as conn:
                marked.append(await repository.book_sends(conn, sent=ids))
        async with pool.connection() as conn:
            await conn.execute("SELECT pg_stat_force_next_flush()")
        await asyncio.sleep(1)
        read = _due_index_blocks(db_url) - before
    finally:
        await pool.close()
    assert marked == [5, 0, 0, 0, 0, 0, 0, 0]  # sent once; later calls find nothing unsent
    # the old statement read 137 blocks of the index in these 8 calls, this one 1
    assert read < 40, f"marking 5 orders 8 times read {read} blocks of oppdrag_due"
