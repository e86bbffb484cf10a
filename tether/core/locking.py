"""Single-flight across processes: one caller does the work for a key, the others wait for it.

The leader holds a session-level advisory lock on the key, so no transaction stays open while it
works (the work is usually an HTTP call). Waiters poll for the lock to be free with short
statements instead of blocking on it, so waiting never pins a pooled connection: twenty waiters
on a pool of eight cannot starve the leader of the connection it needs to write its result.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from psycopg_pool import AsyncConnectionPool

from tether.core import db
from tether.core.sql import load_queries

queries = load_queries("tether.core", "locking.sql")


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for ``name`` (same in every process)."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@asynccontextmanager
async def single_flight(
    pool: AsyncConnectionPool[Any], name: str, *, wait_s: float, poll_s: float = 0.01
) -> AsyncIterator[bool]:
    """Yield ``True`` to the one leader for ``name``; others get ``False`` once it has finished.

    A waiter also gets ``False`` after ``wait_s`` even if the leader has not finished: it must then
    treat the work as not done. Callers re-read the shared result after a ``False``.
    """
    key = lock_key(name)
    async with pool.connection() as conn:
        row = await db.fetch_one(conn, queries["try_lock"], {"key": key})
        await conn.commit()  # the lock is session-level: end the transaction, keep the lock
        if row["acquired"]:
            try:
                yield True
            finally:
                await db.fetch_one(conn, queries["unlock"], {"key": key})
                await conn.commit()
            return
    await _wait_until_free(pool, key, wait_s=wait_s, poll_s=poll_s)
    yield False


async def _wait_until_free(
    pool: AsyncConnectionPool[Any], key: int, *, wait_s: float, poll_s: float
) -> None:
    deadline = time.monotonic() + wait_s
    delay = poll_s
    while time.monotonic() < deadline:
        await asyncio.sleep(delay)
        async with pool.connection() as conn:
            row = await db.fetch_one(conn, queries["probe_lock"], {"key": key})
            await conn.commit()
        if row["free"]:
            return
        delay = min(delay * 1.5, 0.1)
