from __future__ import annotations

import psycopg

from tether.capabilities import migration_components
from tether.core import migrations

ALL = migration_components()


def test_every_migration_is_named_and_ordered() -> None:
    found = migrations.discover(ALL)
    assert found, "no migrations discovered"
    for component in {m.component for m in found}:
        versions = [m.version for m in found if m.component == component]
        assert versions == list(range(1, len(versions) + 1)), component


def test_upgrade_applies_everything_once_and_is_idempotent(empty_db_url: str) -> None:
    first = migrations.upgrade(empty_db_url, ALL)
    assert len(first) == len(migrations.discover(ALL))
    assert migrations.upgrade(empty_db_url, ALL) == []
    assert migrations.pending(empty_db_url, ALL) == []
    with psycopg.connect(empty_db_url) as conn:
        count = conn.execute("SELECT count(*) FROM tether.schema_migration").fetchone()
    assert count == (len(first),)
