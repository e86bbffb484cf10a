"""Build the runtime every entrypoint shares: resolved database URL and an open pool."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import psycopg
from psycopg_pool import AsyncConnectionPool
from pydantic_settings import BaseSettings

from tether.core import db, migrations
from tether.core.settings import Settings

S = TypeVar("S", bound=BaseSettings)


@dataclass(frozen=True, kw_only=True)
class Runtime:
    """What a running tether process holds: its settings and its database pool.

    ``overrides`` holds capability settings given in code (the demo, tests); any other
    capability settings class is read from the environment when first asked for.
    """

    settings: Settings
    database_url: str
    pool: AsyncConnectionPool[Any]
    overrides: Mapping[type[BaseSettings], BaseSettings] = field(default_factory=dict)

    def settings_of(self, cls: type[S]) -> S:
        """The settings of one capability (``<capability>/settings.py``)."""
        found = self.overrides.get(cls)
        return cast(S, found) if found is not None else cls()


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    database_url: str | None = None,
    migrate: Sequence[str] = (),
    overrides: Sequence[BaseSettings] = (),
) -> AsyncIterator[Runtime]:
    """Resolve the database, apply the given components' migrations, open the pool.

    Without ``database_url``: ``DATABASE_URL`` or the running embedded server; none is started
    here (``db.url_in_use``), so a one-shot command leaves no server behind.

    ``migrate`` names the migration components (``tether.core`` and the capability packages,
    from ``tether.capabilities``); empty applies none.
    """
    url = database_url or db.url_in_use(settings)
    if migrate:
        migrations.upgrade(url, tuple(migrate))
    with db.connect_errors_explained(url):  # unreachable: one line saying what to do
        probe = await psycopg.AsyncConnection.connect(url, connect_timeout=10)
    await probe.close()
    pool = db.make_pool(
        url,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        timeout=settings.db_pool_timeout_s,
    )
    await pool.open(wait=True, timeout=30)
    try:
        yield Runtime(
            settings=settings,
            database_url=url,
            pool=pool,
            overrides={type(o): o for o in overrides},
        )
    finally:
        await pool.close()
