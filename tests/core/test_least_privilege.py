"""An owner role migrates; the app runs as a role with data rights only (``--no-migrate``):
reads and writes work, DDL is refused."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tether.capabilities import migration_components, upgrade_database
from tether.core import db, keys, migrations, roles
from tether.core.errors import ConfigurationError
from tether.core.settings import Settings


@pytest.fixture
def owner_and_app(server_url: str) -> Iterator[tuple[str, str, str]]:
    """(owner URL, app URL, app role) of a fresh database owned by a fresh owner role."""
    suffix = uuid.uuid4().hex[:8]
    owner, app, name = f"tether_owner_{suffix}", f"tether_app_{suffix}", f"tether_lp_{suffix}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{owner}" LOGIN')
        conn.execute(f'CREATE ROLE "{app}" LOGIN')
        conn.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')
        conn.execute(f'REVOKE ALL ON DATABASE "{name}" FROM PUBLIC')
    base = psycopg.conninfo.conninfo_to_dict(db.with_dbname(server_url, name))
    base.pop("password", None)
    owner_url = psycopg.conninfo.make_conninfo(**{**base, "user": owner})  # type: ignore[arg-type]
    app_url = psycopg.conninfo.make_conninfo(**{**base, "user": app})  # type: ignore[arg-type]
    yield owner_url, app_url, app
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'DROP ROLE IF EXISTS "{app}"')
        conn.execute(f'DROP ROLE IF EXISTS "{owner}"')


def test_the_app_runs_as_a_data_only_role(
    owner_and_app: tuple[str, str, str], tmp_path: Path, start_api: Any
) -> None:
    owner_url, app_url, app_role = owner_and_app
    with pytest.raises(ConfigurationError):  # before the grant the app role cannot connect
        migrations.pending(app_url, migration_components())
    migrations.upgrade(owner_url, migration_components())
    schemas = roles.grant(owner_url, app_role)
    assert {"tether", "ap", "elicensing"} <= set(schemas)
    assert roles.grant(owner_url, app_role) == schemas  # idempotent

    _, secret = keys.create(app_url, "as app role", ["admin"])  # an INSERT as the app role
    settings = Settings(database_url=app_url, data_dir=tmp_path / "d", migrate=False)  # type: ignore[call-arg]
    client = start_api(settings, database_url=app_url)
    headers = {"Authorization": f"Bearer {secret}"}
    assert client.get("/healthz").status_code == 200
    assert client.get("/metrics", headers=headers).status_code == 200  # key lookup + touch
    with psycopg.connect(app_url, autocommit=True) as conn:
        conn.execute("INSERT INTO ap.accounting_point (gsrn) VALUES ('707057500000000018')")
        assert conn.execute("SELECT count(*) FROM ap.accounting_point").fetchone() == (1,)
    read = client.get("/api/v1/accounting-points/707057500000000018", headers=headers)
    assert read.status_code == 200, read.text
    with psycopg.connect(app_url, autocommit=True) as conn:
        for ddl in (
            "CREATE TABLE ap.intruder (id int)",
            "ALTER TABLE ap.accounting_point ADD COLUMN x int",
            "DROP TABLE tether.api_key",
            "CREATE SCHEMA intruder",
            "DELETE FROM tether.schema_migration",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(ddl)
    with pytest.raises(ConfigurationError, match="--no-migrate"):  # so it runs with --no-migrate
        migrations.upgrade(app_url, migration_components())


def test_worker_once_runs_as_the_data_only_role(owner_and_app: tuple[str, str, str]) -> None:
    import subprocess
    import sys

    owner_url, app_url, app_role = owner_and_app
    upgrade_database(owner_url)  # what `tether db upgrade` does, as the owner
    roles.grant(owner_url, app_role)
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": app_url}
    run = [sys.executable, "-m", "tether", "worker", "--once"]
    refused = subprocess.run(run, capture_output=True, text=True, timeout=120, env=env)
    assert refused.returncode == 1 and "--no-migrate" in refused.stderr  # it tried to migrate
    assert "Traceback" not in refused.stderr
    done = subprocess.run(
        [*run, "--no-migrate"], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
