"""What every ``tether`` command prints: consoles that keep a line whole, and one form of error.

Rich wraps at the terminal's width, and at 80 columns when piped: an error or a status line cut
in two broke ``grep`` and the one-line rule of scripts reading stderr. Errors are
``error: <message>`` from every command (one capability's printed the exception's class name).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg
from rich.console import Console
from rich.text import Text

from tether.core.errors import TetherError
from tether.core.logging import hide_passwords
from tether.core.settings import load_settings


def console(*, stderr: bool = False, **options: Any) -> Console:
    """A console whose lines are never broken by rich (a terminal still folds them on screen).
    Tables keep their layout: print them with ``soft_wrap=False`` to fit the width."""
    return Console(stderr=stderr, soft_wrap=True, **options)


errors = console(stderr=True)


def print_error(message: str) -> None:
    """``error: <message>`` on stderr, in one line; the message is printed as given (a key or
    an upstream's text like ``[red]`` is no markup), but for the passwords of URLs and
    connection strings in it (libpq quotes a malformed ``DATABASE_URL`` whole)."""
    errors.print(Text.assemble(("error:", "red"), " ", hide_passwords(message)))


@contextlib.contextmanager
def one_line_errors() -> Iterator[None]:
    """Expected failures: one clear line on stderr, no traceback, and their exit code (2 for a
    bad setting, as for a bad option; 1 for the others). ``SystemExit``: click passes it on,
    inside a command or outside."""
    try:
        yield
    except TetherError as exc:
        print_error(exc.message)
        raise SystemExit(exc.exit_code) from None
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
        print_error(
            "the database has no tether schema (or an old one): "
            f"run `tether db upgrade` first{which_database()}"
        )
        raise SystemExit(1) from None


def which_database() -> str:
    """Which database that was: the embedded PostgreSQL of another TETHER_DATA_DIR than the
    demo's (a command run from another folder looks in its own ``.tether``)."""
    try:
        settings = load_settings()
    except Exception:  # the environment is broken: the first error said enough
        return ""
    if settings.database_url is not None:
        return ""
    return (
        f" (it is the embedded PostgreSQL of TETHER_DATA_DIR={settings.data_dir.resolve()}; "
        "to use a running demo's, run from its folder or set its TETHER_DATA_DIR)"
    )
