"""``db.pipelined``: a transaction's BEGIN and COMMIT sent with its statements, on a connection
from ``db.autocommit``. Round trips counted in libpq's trace: one ReadyForQuery each."""

from __future__ import annotations

import tempfile
from typing import Any

import pytest
from psycopg import errors, pq
from psycopg_pool import AsyncConnectionPool

from tether.core import db


async def _rows(pool: AsyncConnectionPool[Any]) -> list[int]:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT n FROM piped ORDER BY n")
        return [r["n"] for r in await cur.fetchall()]


@pytest.fixture
async def piped(pool: AsyncConnectionPool[Any]) -> AsyncConnectionPool[Any]:
    async with pool.connection() as conn:
        await conn.execute("CREATE TABLE piped (n int PRIMARY KEY)")
    return pool


async def test_begin_statements_and_commit_are_one_round_trip(
    piped: AsyncConnectionPool[Any],
) -> None:
    with tempfile.TemporaryFile("w+") as log:
        async with db.autocommit(piped) as conn:
            conn.pgconn.trace(log.fileno())
            async with db.pipelined(conn, begin=True, commit=True):
                await conn.execute("INSERT INTO piped VALUES (1)")
                await conn.execute("INSERT INTO piped VALUES (2)")
            conn.pgconn.untrace()
            assert conn.pgconn.transaction_status == pq.TransactionStatus.IDLE
        log.seek(0)
        assert sum("\tReadyForQuery\t" in line for line in log) == 1
    assert await _rows(piped) == [1, 2]


async def test_a_transaction_opened_in_one_block_is_closed_by_another(
    piped: AsyncConnectionPool[Any],
) -> None:
    async with db.autocommit(piped) as conn:
        async with db.pipelined(conn, begin=True):
            await conn.execute("INSERT INTO piped VALUES (1)")
        assert conn.pgconn.transaction_status == pq.TransactionStatus.INTRANS
        async with db.pipelined(conn, commit=True):
            await conn.execute("INSERT INTO piped VALUES (2)")
        assert conn.pgconn.transaction_status == pq.TransactionStatus.IDLE
    assert await _rows(piped) == [1, 2]


async def test_a_block_that_raises_commits_nothing(piped: AsyncConnectionPool[Any]) -> None:
    with pytest.raises(RuntimeError):
        async with (
            db.autocommit(piped) as conn,
            db.pipelined(conn, begin=True, commit=True),
        ):
            await conn.execute("INSERT INTO piped VALUES (1)")
            raise RuntimeError("between the statements and the COMMIT")
    assert await _rows(piped) == []  # autocommit rolled back what was left open


async def test_a_failed_statement_commits_nothing(piped: AsyncConnectionPool[Any]) -> None:
    with pytest.raises(errors.UniqueViolation):
        async with (
            db.autocommit(piped) as conn,
            db.pipelined(conn, begin=True, commit=True),
        ):
            await conn.execute("INSERT INTO piped VALUES (1)")
            await conn.execute("INSERT INTO piped VALUES (1)")
    assert await _rows(piped) == []


async def test_neither_flag_runs_the_block_as_it_is(piped: AsyncConnectionPool[Any]) -> None:
    async with db.autocommit(piped) as conn:
        async with db.pipelined(conn):
            await conn.execute("INSERT INTO piped VALUES (1)")
            assert conn.pgconn.pipeline_status == pq.PipelineStatus.OFF
        assert conn.pgconn.transaction_status == pq.TransactionStatus.IDLE  # autocommitted
    assert await _rows(piped) == [1]
