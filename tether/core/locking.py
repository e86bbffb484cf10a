"""Mutual exclusion across processes, on session-level advisory locks.

``exclusive``: callers take turns, for read-check-write sequences such as a balance write.

The holder keeps a session-level advisory lock on the key, so no transaction stays open while it
works. Waiters poll with short statements instead of blocking on the lock, so waiting never pins
a pooled connection: twenty waiters on a pool of eight cannot starve the holder of the
connection it needs to write its result.
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
from tether.core.errors import Busy
from tether.core.sql import load_queries

queries = load_queries("tether.core", "locking.sql")


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for ``name`` (same in every process)."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@asynccontextmanager
async def exclusive(
    pool: AsyncConnectionPool[Any], name: str, *, wait_s: float, poll_s: float = 0.01
) -> AsyncIterator[None]:
    """Hold ``name`` alone, in every process, for a read-check-write that must not interleave.

    Waits up to ``wait_s`` for the holder to finish, polling with short statements (no pooled
    connection is pinned while waiting); then raises ``Busy``.
    """
    key = lock_key(name)
    pauses = _Pauses(wait_s, poll_s)
    while True:
        async with _try_hold(pool, key) as held:
            if held is not None:
                yield
                return
        if not await pauses.next():
            raise Busy(f"{name} is held by another request; try again")


@asynccontextmanager
async def _try_hold(
    pool: AsyncConnectionPool[Any], key: int
) -> AsyncIterator[db.Connection | None]:
    """Take the lock if it is free and give it back on exit; yields its connection if taken."""
    async with pool.connection() as conn:
        row = await db.fetch_one(conn, queries["try_lock"], {"key": key})
        await conn.commit()  # the lock is session-level: end the transaction, keep the lock
        if not row["acquired"]:
            yield None
            return
        try:
            yield conn
        finally:
            await db.fetch_one(conn, queries["unlock"], {"key": key})
            await conn.commit()


class _Pauses:
    """Growing pauses between polls (``poll_s``, x1.5, at most 0.1 s) until ``wait_s`` is up."""

    def __init__(self, wait_s: float, poll_s: float) -> None:
        self.deadline = time.monotonic() + wait_s
        self.delay = poll_s

    async def next(self) -> bool:
        """Sleep the next pause; ``False`` at once when the time is up."""
        if time.monotonic() >= self.deadline:
            return False
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 1.5, 0.1)
        return True
