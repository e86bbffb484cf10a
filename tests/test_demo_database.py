"""``tether demo`` recreates its database on every run: it said each of some 40 migrations at
INFO before its banner. The demo's path says one line; each migration stays at DEBUG."""

from __future__ import annotations

import logging
import uuid

import psycopg
import pytest

from tether.capabilities import migration_components
from tether.core import migrations
from tether.demo import recreate_demo_database


def test_the_demo_database_is_one_info_line_and_each_migration_is_debug(
    server_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    name = f"tether_demo_t_{uuid.uuid4().hex[:8]}"  # never the real demo's database
    count = len(migrations.discover(migration_components()))
    caplog.set_level(logging.DEBUG)
    try:
        recreate_demo_database(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    info = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    each = [r for r in caplog.records if r.getMessage().startswith("applied migration ")]
    assert info == [f"applied {count} migrations to {name}"]
    assert len(each) == count
    assert {r.levelno for r in each} == {logging.DEBUG}
