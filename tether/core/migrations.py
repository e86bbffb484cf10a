"""Forward-only, numbered SQL migrations, one folder per component.

Each component (``tether.core`` first, then every capability's package, as the composition root
``tether.capabilities.migration_components()`` lists them) ships
``<package>/migrations/NNNN_name.sql``.
Applied versions are recorded in ``tether.schema_migration``; an advisory lock makes concurrent
upgrades (a demo and its workers starting together) safe.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources

import psycopg
from psycopg import sql

from tether.core import db
from tether.core.errors import ConfigurationError

logger = logging.getLogger(__name__)

_FILENAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")
_LOCK_KEY = 7_404_211  # arbitrary, constant: the advisory lock that serialises upgrades


@dataclass(frozen=True, kw_only=True)
class Migration:
    component: str
    version: int
    name: str
    sql: str


def discover(components: tuple[str, ...]) -> list[Migration]:
    """Every migration file, in the order it must run."""
    found: list[Migration] = []
    for component in components:
        folder = resources.files(component).joinpath("migrations")
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if not entry.name.endswith(".sql"):
                continue
            match = _FILENAME.match(entry.name)
            if match is None:
                raise ValueError(f"migration {component}/{entry.name} is not NNNN_snake_name.sql")
            found.append(
                Migration(
                    component=component,
                    version=int(match["version"]),
                    name=match["name"],
                    sql=entry.read_text("utf-8"),
                )
            )
    return found


def ready(url: str, components: tuple[str, ...], *, migrate: bool) -> None:
    """Migrate ``url`` (``migrate`` off: only connect to it), so a command that runs until
    stopped (``serve``) learns that the database does not answer before it starts anything, and
    says so in one line (``ConfigurationError``), not in its server's lifespan traceback."""
    if migrate:
        upgrade(url, components)
        return
    with db.connect_errors_explained(url):
        psycopg.connect(url, connect_timeout=10).close()


def upgrade(
    url: str, components: tuple[str, ...], *, log_level: int = logging.INFO
) -> list[Migration]:
    """Apply pending migrations, each in its own transaction; return the ones applied.

    Each is logged at ``log_level``: INFO where nothing else says so (serve, worker), DEBUG
    where the caller prints them itself (``tether db upgrade``, which said each one twice)."""
    applied: list[Migration] = []
    with db.connect_errors_explained(url):
        conn = psycopg.connect(url, autocommit=True)
    with conn, _owner_needed():
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute("CREATE SCHEMA IF NOT EXISTS tether")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS tether.schema_migration ("
                " component text NOT NULL, version int NOT NULL, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now(),"
                " PRIMARY KEY (component, version))"
            )
            done = {
                (c, v)
                for c, v in conn.execute(
                    "SELECT component, version FROM tether.schema_migration"
                ).fetchall()
            }
            for migration in discover(components):
                if (migration.component, migration.version) in done:
                    continue
                with conn.transaction():
                    conn.execute(sql.SQL(migration.sql))
                    conn.execute(
                        "INSERT INTO tether.schema_migration (component, version, name)"
                        " VALUES (%s, %s, %s)",
                        (migration.component, migration.version, migration.name),
                    )
                logger.log(
                    log_level,
                    "applied migration %s/%04d_%s",
                    migration.component,
                    migration.version,
                    migration.name,
                    extra={"action": "migration_applied"},
                )
                applied.append(migration)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied


@contextmanager
def _owner_needed() -> Iterator[None]:
    """A role without DDL rights gets one line saying what to do instead of a traceback."""
    try:
        yield
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ConfigurationError(
            f"this database role may not change the schema ({exc.diag.message_primary}): run "
            "`tether db upgrade` as the owner role, and serve/worker with --no-migrate "
            "(TETHER_MIGRATE=false); see docs/security.md"
        ) from exc


def pending(url: str, components: tuple[str, ...]) -> list[Migration]:
    """Migrations not yet applied to the database at ``url``."""
    with db.connect_errors_explained(url):
        conn = psycopg.connect(url)
    with conn:
        exists = conn.execute("SELECT to_regclass('tether.schema_migration')").fetchone()
        done: set[tuple[str, int]] = set()
        if exists and exists[0]:
            done = {
                (c, v)
                for c, v in conn.execute(
                    "SELECT component, version FROM tether.schema_migration"
                ).fetchall()
            }
    return [m for m in discover(components) if (m.component, m.version) not in done]
