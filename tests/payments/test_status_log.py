"""The status publisher's cursor over the status log (migration 0008): every committed status
goes out once and in order per key, including one whose transaction commits after statuses with
higher ids were published; a window larger than a page goes out page by page; one publisher at a
time; statuses left unpublished by the schema before the cursor go out, published ones do not."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from tether.capabilities import migration_components
from tether.core import migrations
from tether.payments import console, repository
from tether.payments.service import PaymentsService
from tether.payments.statuses import STATUS_BATCH

from .conftest import publish_once

BODY = {"status": "OK", "detaljer": None, "error": None, "simulering": False}


async def stream_keys(js: Any, service: PaymentsService) -> list[str]:
    """The Transaction-ID of every status on the stream, in stream order."""
    s = service.settings
    info = await js.stream_info(s.status_stream)
    return [
        (await js.get_msg(s.status_stream, seq)).headers["Transaction-ID"]
        for seq in range(1, info.state.messages + 1)
    ]


async def insert(conn: Any, key: str) -> None:
    await repository.insert_status(conn, original_key=key, status="OK", body=BODY)


async def test_a_status_committed_after_later_ids_were_published_still_goes_out(
    service: PaymentsService, pool: AsyncConnectionPool[Any], nats_url: str, js: Any
) -> None:
    """A transaction holds the lower id open while a later one commits and is published; a
    cursor on the highest published id would skip the lower one for ever."""
    async with pool.connection() as slow:
        await slow.execute("BEGIN")
        await insert(slow, "slow")  # takes the lower id, not committed yet
        async with pool.connection() as fast:
            await insert(fast, "fast")
        assert await publish_once(service, nats_url) == 1
        assert await publish_once(service, nats_url) == 0  # still open: not in any window
        await slow.execute("COMMIT")
    assert await publish_once(service, nats_url) == 1
    assert await publish_once(service, nats_url) == 0
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT original_key FROM pay.status ORDER BY id")
        assert [r["original_key"] for r in await cur.fetchall()] == ["slow", "fast"]
    assert await stream_keys(js, service) == ["fast", "slow"]


async def test_a_window_larger_than_a_page_goes_out_page_by_page_in_order(
    service: PaymentsService, pool: AsyncConnectionPool[Any], nats_url: str, js: Any
) -> None:
    n = STATUS_BATCH * 2 + 7
    async with pool.connection() as conn:  # one transaction: all in one window
        await conn.execute(
            "INSERT INTO pay.status (original_key, status, body)"
            " SELECT 'k' || lpad(g::text, 5, '0'), 'OK', %s::jsonb FROM generate_series(1, %s) g",
            (json.dumps(BODY), n),
        )
    async with pool.connection() as conn:
        for key in ("after1", "after2"):  # later transactions: a later window
            await insert(conn, key)
    assert await publish_once(service, nats_url) == n + 2
    assert await publish_once(service, nats_url) == 0
    keys = await stream_keys(js, service)
    assert keys == [f"k{i:05d}" for i in range(1, n + 1)] + ["after1", "after2"]


async def test_one_publisher_at_a_time(
    service: PaymentsService, pool: AsyncConnectionPool[Any], nats_url: str, js: Any
) -> None:
    """While another publisher holds the cursor, a round publishes nothing (a key's statuses
    never leave from two processes at once, out of order)."""
    async with pool.connection() as conn:
        await insert(conn, "k1")
    async with pool.connection() as other:
        await other.execute("BEGIN")
        await other.execute("SELECT * FROM pay.status_cursor FOR UPDATE")
        assert await publish_once(service, nats_url) == 0
        await other.execute("ROLLBACK")
    assert await publish_once(service, nats_url) == 1
    assert await stream_keys(js, service) == ["k1"]


@pytest.mark.parametrize("later_commit", [False, True])
def test_statuses_unpublished_before_the_cursor_are_in_its_first_window(
    empty_db_url: str, later_commit: bool
) -> None:
    """Upgrading a database with the published_at schema: a status with published_at set is
    never published again, one without it is in the cursor's first window. Also when a later
    transaction (any database of the server) commits while the migration runs: a snapshot
    leaves its own transaction out of its in-progress list, so the first cursor counted the
    migration as committed, and the pending statuses it marked as published (seen as a flaky
    test under xdist)."""
    components = migration_components()
    found = migrations.discover(components)
    cursor = next(m for m in found if m.component == "tether.payments" and m.version == 8)
    before = found[: found.index(cursor)]
    with (
        psycopg.connect(empty_db_url, autocommit=True) as conn,
        psycopg.connect(empty_db_url, autocommit=True) as other,
    ):
        conn.execute("CREATE SCHEMA tether")
        for m in before:
            with conn.transaction():
                conn.execute(m.sql.encode())
        conn.execute(
            "INSERT INTO pay.status (original_key, status, body, published_at) VALUES"
            " ('old', 'OK', '{}', now()), ('pending', 'OK', '{}', NULL)"
        )
        with conn.transaction():
            conn.execute("SELECT pg_current_xact_id()")  # the migration's id, taken first
            if later_commit:  # a later id commits before the cursor's snapshot is taken
                other.execute("CREATE TEMP TABLE later (x int)")
            conn.execute(cursor.sql.encode())
        for m in found[found.index(cursor) + 1 :]:  # the query calls a later migration's function
            with conn.transaction():
                conn.execute(m.sql.encode())
        first = conn.execute(repository.queries["claim_status_window"], {"limit": 10}).fetchall()
        assert [row[4] for row in first] == ["pending"]


async def test_statuses_are_republished_by_giving_them_a_new_transaction(
    service: PaymentsService, pool: AsyncConnectionPool[Any], nats_url: str, js: Any
) -> None:
    """The operators' runbook: after the status stream was lost, the statuses to send again are
    given the id of a transaction newer than the cursor; the next window publishes them."""
    async with pool.connection() as conn:
        for key in ("k1", "k2"):
            await insert(conn, key)
    assert await publish_once(service, nats_url) == 2
    await js.delete_stream(service.settings.status_stream)  # the stream was lost
    async with pool.connection() as conn:
        await conn.execute("UPDATE pay.status SET txid = pg_current_xact_id()")
    assert await publish_once(service, nats_url) == 2
    assert await stream_keys(js, service) == ["k1", "k2"]


async def test_the_console_counts_the_statuses_not_on_nats_yet(
    service: PaymentsService, pool: AsyncConnectionPool[Any], nats_url: str, js: Any
) -> None:
    """Stored and not published: all of them, then those after a page already published in
    the current window, then none; a stalled publisher shows here and on /metrics."""

    async def backlog() -> dict[str, Any]:
        async with pool.connection() as conn:
            cur = await conn.execute(console.queries["payments_overview"], {"examples": 1})
            row = await cur.fetchone()
        assert row is not None
        panel = console.build_panel(row)
        gauges = {g.name: g.value for g in panel.gauges}
        return {
            "count": gauges["tether_payments_statuses_unpublished"],
            "oldest_s": gauges["tether_payments_oldest_unpublished_seconds"],
            "row": next(r for r in panel.rows if "NATS" in r.label),
        }

    assert (await backlog())["count"] == 0
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO pay.status (original_key, status, body, created_at)"
            " SELECT 'k' || g, 'OK', '{}', now() - interval '2 minutes'"
            " FROM generate_series(1, 3) g"
        )
        await insert(conn, "later")
    stalled = await backlog()
    assert stalled["count"] == 4 and stalled["oldest_s"] >= 120
    assert stalled["row"].status == "warn" and stalled["row"].value.startswith("4, the oldest 2")
    async with pool.connection() as conn, conn.transaction():  # one page of two, published
        page = await repository.claim_status_window(conn, limit=2)
        assert page is not None and [r[2] for r in page.rows] == ["k1", "k2"]
        await repository.move_status_cursor(conn, page)
    assert (await backlog())["count"] == 2
    assert await publish_once(service, nats_url) == 2
    done = await backlog()
    assert done["count"] == 0 and done["oldest_s"] == 0 and done["row"].status == "ok"
