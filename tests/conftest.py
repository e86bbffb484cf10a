"""Shared fixtures: a real PostgreSQL (embedded unless TETHER_TEST_DATABASE_URL is set), and a
fresh database per test cloned from a migrated template, as procrastinate's tests do."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from tether.capabilities import migration_components
from tether.core import db, migrations
from tether.core.settings import Settings

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("TETHER_") and key != "TETHER_TEST_DATABASE_URL":
            monkeypatch.delenv(key)
    monkeypatch.delenv("DATABASE_URL", raising=False)


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server: the one in TETHER_TEST_DATABASE_URL, else an embedded one."""
    url = os.environ.get("TETHER_TEST_DATABASE_URL")
    if url:
        yield url
        return
    import pgserver

    data = tmp_path_factory.mktemp("pg") / "data"
    server = pgserver.get_server(str(data), cleanup_mode="stop")
    yield server.get_uri()
    server.cleanup()


@pytest.fixture(scope="session")
def template_db(server_url: str) -> Iterator[str]:
    name = f"tether_tpl_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    migrations.upgrade(db.with_dbname(server_url, name), migration_components())
    yield name
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db_url(server_url: str, template_db: str) -> Iterator[str]:
    """URL of a fresh, fully migrated database for this test only."""
    name = f"tether_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    yield db.with_dbname(server_url, name)
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def empty_db_url(server_url: str) -> Iterator[str]:
    """URL of an empty database (no migrations)."""
    name = f"tether_e_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield db.with_dbname(server_url, name)
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[AsyncConnectionPool[Any]]:
    p = db.make_pool(db_url, min_size=1, max_size=8)
    await p.open(wait=True)
    yield p
    await p.close()


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=db_url, data_dir=tmp_path / "data")  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private NATS server with JetStream on a free port (never the machine's one on 4222)."""
    from tether.core.natsserver import EmbeddedNats

    server = EmbeddedNats(tmp_path_factory.mktemp("nats"))
    yield server.url
    server.stop()
