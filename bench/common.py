"""What every benchmark needs: a PostgreSQL server, scratch databases, RESULTS.md sections."""

from __future__ import annotations

import re
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from tether.capabilities import migration_components
from tether.core import db, migrations

RESULTS = Path(__file__).with_name("RESULTS.md")


@contextmanager
def postgres(server_url: str | None) -> Iterator[str]:
    """``server_url`` as given, or an embedded server in a temporary folder, stopped afterwards."""
    if server_url:
        yield server_url
        return
    from tether.core.embedded import embedded_server

    with tempfile.TemporaryDirectory(prefix="tether-bench-") as tmp:
        server = embedded_server(Path(tmp) / "pg", cleanup_mode="stop")
        try:
            yield server.get_uri()
        finally:
            server.cleanup()


@contextmanager
def scratch_database(
    server_url: str, prefix: str, *, template_url: str | None = None, migrate: bool = False
) -> Iterator[str]:
    """A new database, a copy of the one at ``template_url`` or migrated; dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    copy = ""
    if template_url:
        source = psycopg.conninfo.conninfo_to_dict(template_url)["dbname"]
        copy = f' TEMPLATE "{source}" STRATEGY FILE_COPY'  # no WAL copy of a big template
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"{copy}')
    try:
        url = db.with_dbname(server_url, name)
        if migrate:
            migrations.upgrade(url, migration_components())
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def percentile(samples: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``samples``, nearest rank."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def write_section(heading: str, section: str) -> None:
    """Replace the section under ``heading`` in RESULTS.md (or add it); others stay as they are."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\n"
    found = re.search(rf"^{re.escape(heading)}$", text, re.M)  # the whole line: not a longer one
    if found:
        start = found.start()
        nxt = text.find("\n## ", start + len(heading))
        text = text[:start] + section + ("\n" + text[nxt + 1 :] if nxt != -1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text)
