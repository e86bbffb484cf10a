"""Every command of the ``tether`` CLI explains itself with ``--help``."""

from __future__ import annotations

import subprocess
import sys

import pytest

COMMANDS = [
    [],
    ["demo"],
    ["serve"],
    ["worker"],
    ["db"],
    ["db", "upgrade"],
    ["db", "status"],
    ["db", "url"],
    ["db", "grant"],
    ["keys"],
    ["keys", "create"],
    ["keys", "list"],
    ["keys", "revoke"],
    ["simulate"],
    ["simulate", "datahub"],
    ["simulate", "elicensing"],
    ["elicensing"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "tether")
def test_help_explains_every_command(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tether", *command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "120"},
    )
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout
    # a docstring line beyond the usage line: the command says what it does
    assert len([line for line in result.stdout.splitlines() if line.strip()]) > 3


def test_db_upgrade_against_a_server_reports_what_it_applied(empty_db_url: str) -> None:
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": empty_db_url}
    run = [sys.executable, "-m", "tether", "db", "upgrade"]
    first = subprocess.run(run, capture_output=True, text=True, timeout=60, env=env)
    assert first.returncode == 0, first.stderr
    assert "applied tether.accountingpoints 0001_schema" in first.stderr
    again = subprocess.run(run, capture_output=True, text=True, timeout=60, env=env)
    assert "0 migration(s) applied" in again.stderr


def test_a_bad_database_url_says_what_to_do(tmp_path: object) -> None:
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    result = subprocess.run(
        [sys.executable, "-m", "tether", "db", "upgrade"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode != 0
    assert "DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr
