"""Event intake with group commit: concurrent event requests share one UPDATE and one commit.

Each thin event only marks APs as changed, and one commit costs far more than the row updates.
The first request is written at once; the requests that arrive while it commits wait and are
then written together, so throughput grows with concurrency instead of queueing on commits.
Every caller still gets its answer only after its events are committed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from psycopg_pool import AsyncConnectionPool

from tether.accountingpoints import repository
from tether.core import db


class Intake:
    """One per process: marks APs as changed, coalescing concurrent callers into one commit."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self.pool = pool
        self._pending: list[tuple[list[str], asyncio.Future[set[str]]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def request_syncs(self, gsrns: list[str]) -> set[str]:
        """Mark ``gsrns`` as changed once committed; returns those tether holds."""
        done: asyncio.Future[set[str]] = asyncio.get_running_loop().create_future()
        self._pending.append((gsrns, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        return await done

    async def _write(self) -> None:
        while self._pending:
            group, self._pending = self._pending, []
            wanted = sorted({g for gsrns, _ in group for g in gsrns})  # one lock order
            try:
                async with db.transaction(self.pool) as conn:
                    held = set(await repository.request_syncs(conn, wanted))
            except Exception as exc:
                for _, done in group:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for _, done in group:
                if not done.done():
                    done.set_result(held)
