"""``tether/accountingpoints/functions.sql`` is what runs, so nobody has to replay the migrations.

The file is applied over a freshly migrated database inside a transaction: if it defined any
``ap.*`` function differently from what the migrations left (body, arguments, result, settings)
``pg_get_functiondef`` would change, and if it lacked or added one the names would differ.
"""

from __future__ import annotations

import difflib
import re
from importlib import resources
from typing import Any

import psycopg

FUNCTIONS_SQL = resources.files("tether.accountingpoints").joinpath("functions.sql").read_text()

DEFINITIONS = """
SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid)
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'ap' ORDER BY 1
"""


def definitions(conn: psycopg.Connection[Any]) -> dict[str, str]:
    return {name: text for name, text in conn.execute(DEFINITIONS).fetchall()}


def drift(conn: psycopg.Connection[Any]) -> str:
    """A diff of what the file would change in this database; empty when they agree."""
    before = definitions(conn)
    with conn.transaction(force_rollback=True):
        conn.execute(FUNCTIONS_SQL)
        after = definitions(conn)
    lines = difflib.unified_diff(
        "\n\n".join(before.values()).splitlines(),
        "\n\n".join(after.values()).splitlines(),
        "migrated database",
        "functions.sql",
        lineterm="",
    )
    return "\n".join(lines) if before != after else ""


def test_the_file_names_every_ap_function_of_the_migrated_database(db_url: str) -> None:
    in_file = sorted(re.findall(r"CREATE OR REPLACE FUNCTION (ap\.\w+)\(", FUNCTIONS_SQL))
    with psycopg.connect(db_url) as conn:
        in_db = sorted(
            f"ap.{name}"
            for (name,) in conn.execute(
                "SELECT p.proname FROM pg_proc p"
                " JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'ap'"
            ).fetchall()
        )
    assert in_db == in_file


def test_the_file_defines_each_function_as_the_migrations_left_it(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        assert drift(conn) == "", "functions.sql differs from the migrations"


def test_a_function_changed_by_a_migration_alone_is_noticed(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "CREATE OR REPLACE FUNCTION ap.create_sync_row() RETURNS trigger LANGUAGE plpgsql"
            " AS $$ BEGIN RETURN NEW; END; $$"
        )
        assert "INSERT INTO ap.accounting_point_sync" in drift(conn)


def test_no_ap_function_runs_dynamic_sql(db_url: str) -> None:
    """What runs is the text in the file, findable with grep: no EXECUTE of built strings."""
    with psycopg.connect(db_url) as conn:
        bodies = conn.execute(
            "SELECT p.proname, p.prosrc FROM pg_proc p"
            " JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'ap'"
        ).fetchall()
    assert bodies
    assert [name for name, body in bodies if re.search(r"\bEXECUTE\b", body, re.I)] == []
