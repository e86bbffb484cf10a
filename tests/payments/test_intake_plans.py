"""The batch intake finds its cases by key on a large table that was never analyzed.

The tables start empty and fill fast; until autovacuum first analyzes them, a plan cached while
a table was small, or one that looks a case up by fagsystem alone (every case matches), reads
the whole table for every batch, more as it grows (migration 0006).
"""

from __future__ import annotations

import asyncio

import psycopg

from tether.core import db
from tether.payments import intake

from .conftest import june, message

CASES = 50_000


def _case_rows_read(db_url: str) -> int:
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)"
            " FROM pg_stat_user_tables WHERE schemaname = 'pay' AND relname = 'sak'"
        ).fetchone()
    assert row is not None
    return int(row[0])


async def _reads_after(db_url: str, before: int) -> int:
    """The rows of pay.sak read since ``before``, once the intake's backend reported them (it
    reports when it goes idle, forced by ``pg_stat_force_next_flush``)."""
    for _ in range(50):
        now = _case_rows_read(db_url)
        if now != before:
            return now - before
        await asyncio.sleep(0.1)
    raise AssertionError("the intake's table statistics never arrived")


async def test_a_batch_reads_its_own_cases_not_the_whole_table(db_url: str) -> None:
    pool = db.make_pool(db_url, min_size=1, max_size=1)  # one backend: its plans are cached
    await pool.open(wait=True)
    try:
        for n in range(7):  # past the five calls after which a generic plan may be cached
            batch = [(f"k{n}-{i}", message(june(3, 7), sak=f"new{n}-{i}")) for i in range(50)]
            await intake.store(pool, [intake.prepare(k, raw) for k, raw in batch])
        with psycopg.connect(db_url, autocommit=True) as conn:  # a burst of new cases
            conn.execute(
                "INSERT INTO pay.sak (fagsystem, sak_id)"
                " SELECT 'DAGPENGER', 'old' || g FROM generate_series(1, %s) g",
                (CASES,),
            )
        async with pool.connection() as conn:
            await conn.execute("SELECT pg_stat_force_next_flush()")
        await asyncio.sleep(1)
        before = _case_rows_read(db_url)
        batch = [(f"last-{i}", message(june(3, 7), sak=f"last{i}")) for i in range(50)]
        outcomes = await intake.store(pool, [intake.prepare(k, raw) for k, raw in batch])
        assert len(outcomes) == 50
        async with pool.connection() as conn:
            await conn.execute("SELECT pg_stat_force_next_flush()")
        read = await _reads_after(db_url, before)
    finally:
        await pool.close()
    # 50 new cases, each looked up a few times; a scan by fagsystem reads all 50,400
    assert read < CASES // 10, f"a batch of 50 read {read} rows of pay.sak"
