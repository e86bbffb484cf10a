"""Least privilege in PostgreSQL: the owner role migrates, an app role only reads and writes data.

``grant`` runs as the owner after ``tether db upgrade`` and gives ``role`` data rights (no DDL) on
every schema the owner holds, plus default privileges so later tables in them are covered too.
See docs/security.md.
"""

from __future__ import annotations

from typing import Annotated

import psycopg
import typer
from psycopg import sql

from tether.core import db
from tether.core.errors import ConfigurationError
from tether.core.settings import load_settings

_SCHEMAS = """
SELECT nspname FROM pg_namespace
WHERE nspowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
  AND nspname NOT LIKE 'pg\\_%' AND nspname NOT IN ('information_schema', 'public')
ORDER BY nspname
"""
_PER_SCHEMA = (
    "GRANT USAGE ON SCHEMA {schema} TO {role}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}",
    "GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",
    "GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {schema} TO {role}",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema}"
    " GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema}"
    " GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {role}",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT EXECUTE ON FUNCTIONS TO {role}",
)


def grant(url: str, role: str) -> list[str]:
    """Give ``role`` data rights on the owner's schemas; return the schemas. Idempotent."""
    with db.connect_errors_explained(url):
        conn = psycopg.connect(url, autocommit=True)
    with conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        if exists is None:
            raise ConfigurationError(f"no PostgreSQL role {role!r}: create it first (LOGIN)")
        name = sql.Identifier(role)
        dbname = conn.execute("SELECT current_database()").fetchone()
        assert dbname is not None
        schemas = [row[0] for row in conn.execute(_SCHEMAS).fetchall()]
        with conn.transaction():
            conn.execute(
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                    sql.Identifier(dbname[0]), name
                )
            )
            for schema in schemas:
                for statement in _PER_SCHEMA:
                    conn.execute(
                        sql.SQL(statement).format(schema=sql.Identifier(schema), role=name)
                    )
            if "tether" in schemas:  # the migration record is the owner's business
                conn.execute(
                    sql.SQL(
                        "REVOKE INSERT, UPDATE, DELETE ON tether.schema_migration FROM {}"
                    ).format(name)
                )
    return schemas


def grant_command(
    role: Annotated[str, typer.Argument(help="The app's PostgreSQL role (data rights only).")],
) -> None:
    """Give an app role data rights (no DDL) on tether's schemas; run as the owner after upgrade."""
    settings = load_settings()
    schemas = grant(db.url_in_use(settings), role)
    typer.echo(f"granted data rights on {', '.join(schemas)} to {role}")
