"""How order and case rows are stored for their updates: an order's XML out of line and
uncompressed (migration 0007: each of its three updates copies a pointer, not the compressed
XML), order and case pages with room for the versions their updates make (migration
0009), and states checked by their column's type, not by the table (0017)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from tether.payments import repository
from tether.payments.service import PaymentsService

from .conftest import june, message


async def test_a_large_order_xml_is_stored_out_of_line_uncompressed(
    service: PaymentsService, pool: AsyncConnectionPool[Any]
) -> None:
    # a new amount every week: one line per week and meldeperiode, an XML of several KB
    days = [d for w, first in enumerate((3, 10, 17, 24)) for d in june(first, first + 4, 100 + w)]
    days += [{**d, "meldeperiode": "m2"} for d in june(3, 28, 300)]
    await service.submit("k1", message(days))
    (order,) = await service.orders("sak1")
    assert len(order.xml) > 2_500  # past the row size at which PostgreSQL compresses or moves
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT pg_column_size(xml) AS stored, octet_length(xml) AS raw,"
            " (SELECT count(*) FROM pg_class t JOIN pg_class o ON o.reltoastrelid = t.oid"
            "  WHERE o.oid = 'pay.oppdrag'::regclass) AS toast_tables"
            " FROM pay.oppdrag WHERE id = %s",
            (order.id,),
        )
        row = await cur.fetchone()
    assert row is not None and row["toast_tables"] == 1
    assert row["stored"] == row["raw"]  # not compressed (inline, it was about 45 % of it)


async def _pages(conn: Any, table: str, key: str) -> dict[str, float]:
    cur = await conn.execute(
        f"SELECT {key}::text AS key, (ctid::text::point)[0] AS page FROM {table}"
    )
    return {r["key"]: r["page"] for r in await cur.fetchall()}


async def _hot_updates(conn: Any) -> tuple[int, int]:
    cur = await conn.execute(
        "SELECT pg_stat_get_xact_tuples_hot_updated('pay.oppdrag'::regclass) AS orders,"
        " pg_stat_get_xact_tuples_hot_updated('pay.sak'::regclass) AS cases"
    )
    row = await cur.fetchone()
    return row["orders"], row["cases"]


async def test_an_orders_claim_and_a_cases_update_are_hot_on_their_own_page(
    service: PaymentsService, pool: AsyncConnectionPool[Any]
) -> None:
    # more rows than one full page holds (about 11 orders, 80 cases at fillfactor 100): a new
    # version is written beside the old one (migration 0009), where its WAL record logs only
    # what changed; a case's update and an order's claim (migration 0010) are HOT
    await service.submit_many([(f"k{n}", message(june(3, 14), sak=f"sak{n}")) for n in range(30)])
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO pay.sak (fagsystem, sak_id) SELECT 'DP', 'more' || n"
            " FROM generate_series(1, 200) AS n"
        )
        await conn.commit()
        orders, cases = (
            await _pages(conn, "pay.oppdrag", "id"),
            await _pages(conn, "pay.sak", "sak_id"),
        )
        hot = await _hot_updates(conn)  # counted by this session, flushed only when idle
        claimed = await repository.claim_due_orders(conn, limit=100, dead_s=60)
        await conn.execute("UPDATE pay.sak SET updated_at = now()")
        now = await _hot_updates(conn)
        assert (now[0] - hot[0], now[1] - hot[1]) == (30, 230)  # no index entry written
        assert len(claimed) == 30 and len(cases) == 230
        assert await _pages(conn, "pay.oppdrag", "id") == orders
        assert await _pages(conn, "pay.sak", "sak_id") == cases


async def test_analyze_skips_the_documents_and_keeps_the_keys(
    service: PaymentsService, pool: AsyncConnectionPool[Any]
) -> None:
    # sorting a sample of 30,000 JSON documents per column made each autoanalyze of a pay table
    # cost 0.4-0.5 s of a core; no statement filters by them, so none is gathered (0012)
    await service.submit_many([(f"k{n}", message(june(3, 14), sak=f"sak{n}")) for n in range(5)])
    async with pool.connection() as conn:
        await conn.execute("ANALYZE pay.sak, pay.inbound, pay.oppdrag, pay.candidate, pay.status")
        cur = await conn.execute(
            "SELECT tablename || '.' || attname AS col FROM pg_stats WHERE schemaname = 'pay'"
        )
        gathered = {r["col"] for r in await cur.fetchall()}
    documents = {
        "sak.active_uids",
        "inbound.body",
        "oppdrag.xml",
        "oppdrag.uids",
        "oppdrag.details",
        "candidate.periods",
        "candidate.last_line",
        "candidate.data",
        "status.body",
    }
    keys = {
        "sak.sak_id",
        "inbound.original_key",
        "oppdrag.sak_id",
        "oppdrag.state",
        "candidate.oppdrag_id",
        "status.original_key",
    }
    assert gathered & documents == set()
    assert keys <= gathered


async def test_autovacuum_is_paced_on_every_busy_pay_table(pool: AsyncConnectionPool[Any]) -> None:
    # a vacuum at the default pace took 10-18 % of a core for seconds on a machine already at
    # 85-90 %, and the intake's p99 rose with it; at 10 ms a round it takes 1-3 % (0013)
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT c.relname AS name, o.option_value AS delay FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " LEFT JOIN pg_options_to_table(c.reloptions) o"
            "   ON o.option_name = 'autovacuum_vacuum_cost_delay'"
            " WHERE n.nspname = 'pay' AND c.relkind = 'r'"
        )
        delays = {r["name"]: r["delay"] for r in await cur.fetchall()}
    busy = ("sak", "utbetaling", "inbound", "oppdrag", "candidate", "status")
    assert {name: delays[name] for name in busy} == dict.fromkeys(busy, "10")


async def test_a_status_is_written_into_two_indexes_and_read_by_them(
    service: PaymentsService, pool: AsyncConnectionPool[Any]
) -> None:
    # three statuses a message, each an entry in every index of pay.status: the index on id
    # alone served no statement, so the primary key became (original_key, id), the index a
    # key's reads use (0016); a key's latest status is still its last id's
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT indexrelid::regclass::text AS name FROM pg_index"
            " WHERE indrelid = 'pay.status'::regclass ORDER BY 1"
        )
        # the key's columns, in order: its reads find a key's statuses by its first column
        key = await conn.execute(
            "SELECT array_agg(a.attname ORDER BY k.n)::text[] AS cols FROM pg_constraint c,"
            " unnest(c.conkey) WITH ORDINALITY k(attnum, n)"
            " JOIN pg_attribute a ON a.attrelid = 'pay.status'::regclass AND a.attnum = k.attnum"
            " WHERE c.conrelid = 'pay.status'::regclass AND c.contype = 'p'"
        )
        assert (await key.fetchone()) == {"cols": ["original_key", "id"]}
        assert [r["name"] for r in await cur.fetchall()] == ["pay.status_pkey", "pay.status_txid"]
    await service.submit("k1", message(june(3, 7, 100)))
    async with pool.connection() as conn:
        await repository.insert_status(conn, original_key="k1", status="OK", body={})
        latest, _ = await repository.fetch_latest_status(conn, original_key="k1")
        cur = await conn.execute("SELECT count(*) AS n, count(DISTINCT id) AS ids FROM pay.status")
        counted = await cur.fetchone()
    assert latest is not None and latest.status == "OK"
    assert counted is not None and counted["n"] == counted["ids"] == 2


async def test_the_states_are_checked_by_their_type_not_by_a_table_constraint(
    pool: AsyncConnectionPool[Any],
) -> None:
    # a table's CHECK is read back from its stored text and planned for every INSERT or UPDATE
    # statement (3-8 % of the backend's work a message); a domain's once a session (0017)
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT conrelid::regclass::text AS t FROM pg_constraint WHERE contype = 'c'"
            " AND conrelid IN ('pay.inbound'::regclass, 'pay.oppdrag'::regclass,"
            " 'pay.status'::regclass)"
        )
        assert await cur.fetchall() == []
        cur = await conn.execute(
            "SELECT attrelid::regclass::text || '.' || attname AS col,"
            " format_type(atttypid, NULL) AS type FROM pg_attribute"
            " WHERE (attrelid, attname) IN (('pay.inbound'::regclass, 'state'),"
            " ('pay.oppdrag'::regclass, 'state'), ('pay.status'::regclass, 'status'))"
        )
        assert {r["col"]: r["type"] for r in await cur.fetchall()} == {
            "pay.inbound.state": "pay.message_state",
            "pay.oppdrag.state": "pay.order_state",
            "pay.status.status": "pay.order_state",
        }
        await conn.commit()
    bad = [
        "INSERT INTO pay.status (original_key, status, body) VALUES ('k', 'VENTER', '{}')",
        "INSERT INTO pay.inbound (original_key, content_hash, body, state)"
        " VALUES ('k', 'h', '', 'queued')",
    ]
    for statement in bad:
        async with pool.connection() as conn:
            with pytest.raises(psycopg.errors.CheckViolation):
                await conn.execute(statement)
