"""Guards that grow with the product: they check every capability, present and future, by walking
the package, so a new capability is covered without touching this file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tether.core.sql import parse_queries

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tether"
MAX_MODULE_LINES = 400

QUERY_FILES = sorted(PACKAGE.rglob("queries.sql"))
MODULES = sorted(PACKAGE.rglob("*.py"))


def _relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_the_guards_see_every_capability() -> None:
    """Both capabilities of today have queries: a moved or renamed file would silently pass."""
    assert {p.parent.name for p in QUERY_FILES} >= {"accountingpoints", "elicensing"}


@pytest.mark.parametrize("queries_file", QUERY_FILES, ids=_relative)
def test_every_named_query_is_used_by_the_package(queries_file: Path) -> None:
    """A query nobody runs is dead code that still has to be read and kept in step with the schema.

    Used means its name appears as a string literal (``queries["name"]``) in Python code under
    ``tether/``; tests and benchmarks do not count.
    """
    code = "\n".join(path.read_text("utf-8") for path in MODULES)
    names = parse_queries(queries_file.read_text("utf-8"))
    unused = [name for name in names if not re.search(rf"""["']{name}["']""", code)]
    assert unused == [], f"{_relative(queries_file)}: no Python code under tether/ runs {unused}"


@pytest.mark.parametrize("module", MODULES, ids=_relative)
def test_no_module_is_over_the_line_limit(module: Path) -> None:
    """Long modules hide more than one idea; split them along the data model or the wire."""
    lines = len(module.read_text("utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{_relative(module)} has {lines} lines"


# what runs until stopped, and `db start`: nothing else may start the embedded PostgreSQL
STARTS_THE_EMBEDDED_SERVER = {
    "tether/app.py",
    "tether/cli.py",
    "tether/db_cli.py",
    "tether/demo.py",
}


def test_only_servers_start_the_embedded_postgres() -> None:
    """A one-shot command (a capability's CLI, keys, migrations) uses ``db.url_in_use``: one
    that started the server ran initdb in whatever folder it ran from and left it running."""
    callers = {
        _relative(path)
        for path in MODULES
        if "resolve_database_url(" in path.read_text("utf-8") and path != PACKAGE / "core" / "db.py"
    }
    assert callers <= STARTS_THE_EMBEDDED_SERVER, callers - STARTS_THE_EMBEDDED_SERVER
