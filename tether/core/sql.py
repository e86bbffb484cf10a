"""Load named SQL queries from a capability's ``queries.sql`` (procrastinate's format).

A file holds blocks that start with ``-- name: <query_name>``, then optional ``--`` comment lines,
then one SQL statement using ``%(param)s`` placeholders.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import LiteralString

_NAME = re.compile(r"^-- name: (?P<name>\w+)\s*$", re.MULTILINE)


def parse_queries(text: str) -> dict[str, LiteralString]:
    """Split a queries file into ``{name: sql}``; duplicate names are an error."""
    queries: dict[str, LiteralString] = {}
    matches = list(_NAME.finditer(text))
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        body = "\n".join(
            line for line in text[match.end() : end].splitlines() if not line.startswith("--")
        ).strip()
        name = match.group("name")
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        if not body:
            raise ValueError(f"query {name!r} has no SQL")
        queries[name] = body
    return queries


def load_queries(package: str, filename: str = "queries.sql") -> dict[str, LiteralString]:
    """Read ``filename`` shipped inside ``package`` and parse it."""
    return parse_queries(resources.files(package).joinpath(filename).read_text("utf-8"))
