"""Build the runtime every entrypoint shares: resolved database URL and an open pool."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from psycopg_pool import AsyncConnectionPool

from tether.core import db, migrations
from tether.core.settings import Settings


@dataclass(frozen=True, kw_only=True)
class Runtime:
    """What a running tether process holds: its settings and its database pool."""

    settings: Settings
    database_url: str
    pool: AsyncConnectionPool[Any]


@asynccontextmanager
async def open_runtime(
    settings: Settings, *, upgrade: bool = True, database_url: str | None = None
) -> AsyncIterator[Runtime]:
    """Resolve the database, apply migrations if asked, open the pool; close it on exit."""
    url = database_url or db.resolve_database_url(settings)
    if upgrade:
        migrations.upgrade(url)
    pool = db.make_pool(
        url,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        timeout=settings.db_pool_timeout_s,
    )
    await pool.open(wait=True, timeout=30)
    try:
        yield Runtime(settings=settings, database_url=url, pool=pool)
    finally:
        await pool.close()
