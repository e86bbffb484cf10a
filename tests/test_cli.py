"""Every command of the ``tether`` CLI explains itself with ``--help``."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from tether import cli
from tether.core import cli_output


def _walk(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from _walk(sub, (*path, name))


ROOT_COMMAND = typer.main.get_command(cli.app)
COMMANDS = list(_walk(ROOT_COMMAND))


def _command(path: tuple[str, ...]) -> Any:
    command: Any = ROOT_COMMAND
    for name in path:
        command = command.commands[name]
    return command


def test_the_tree_has_every_capability_and_simulator() -> None:
    from tether.capabilities import CAPABILITIES

    for capability in CAPABILITIES:
        if capability.cli is not None:
            assert (capability.name,) in COMMANDS
        for simulator in capability.simulators:
            assert ("simulate", simulator) in COMMANDS


@pytest.mark.parametrize("path", COMMANDS, ids=lambda c: " ".join(c) or "tether")
def test_every_command_and_option_has_help(path: tuple[str, ...]) -> None:
    command = _command(path)
    assert (command.help or "").strip(), f"`tether {' '.join(path)}` has no help text"
    for param in command.params:
        if param.name != "help":  # options and arguments alike
            assert (param.help or "").strip(), f"`tether {' '.join(path)}` {param.opts} lacks help"
    result = CliRunner().invoke(cli.app, [*path, "--help"], terminal_width=120)
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
    assert "<bool>" not in result.output  # a flag takes no value: no type shown for it
    if path:  # shell completion is the root's option, not every simulator's
        assert "--install-completion" not in result.output


@pytest.mark.parametrize("path", COMMANDS, ids=lambda c: " ".join(c) or "tether")
def test_help_fits_80_columns_without_cutting_a_word(path: tuple[str, ...]) -> None:
    """At 80 columns no line is wider, nothing is cut with an ellipsis or mid-word (every word of
    a help text, and every choice, is printed whole), and no paragraph is broken where the
    docstring's source line ended."""
    command = _command(path)
    shown = CliRunner().invoke(cli.app, [*path, "--help"], env={"COLUMNS": "80"}).output
    name = f"`tether {' '.join(path)} --help`"
    assert max(len(line) for line in shown.splitlines()) <= 80, f"{name}:\n{shown}"
    assert "…" not in shown, f"{name}:\n{shown}"
    texts = [command.help or "", command.epilog or ""]
    texts += [p.help or "" for p in command.params]
    choices = [c for p in command.params for c in p.type_descriptor.choices or ()]
    texts += [str(getattr(c, "value", c)) for c in choices]
    cut = {word for text in texts for word in text.split() if word not in shown}
    assert cut == set(), f"{name} cuts {cut}:\n{shown}"
    for paragraph in (command.help or "").split("\n\n"):
        assert "\n" not in paragraph.strip(), f"{name} breaks a paragraph: {paragraph!r}"


def test_help_runs_as_a_process() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tether", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "120"},
    )
    assert result.returncode == 0, result.stderr
    assert "worker" in result.stdout and "demo" in result.stdout


def test_db_upgrade_against_a_server_reports_what_it_applied(empty_db_url: str) -> None:
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": empty_db_url}
    run = [sys.executable, "-m", "tether", "db", "upgrade"]
    first = subprocess.run(run, capture_output=True, text=True, timeout=60, env=env)
    assert first.returncode == 0, first.stderr
    assert "applied tether.accountingpoints 0001_schema" in first.stdout
    again = subprocess.run(run, capture_output=True, text=True, timeout=60, env=env)
    assert "0 migration(s) applied" in again.stdout


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


def test_the_launcher_loads_no_capability_cli_or_web_stack() -> None:
    """``tether worker`` starts from the CLI: capability sub-commands load when used, not before."""
    probe = (
        "import sys, tether.cli; "
        "print(sorted(m for m in sys.modules if m.startswith('tether.') and m.endswith(('.cli', "
        "'.simulator')) and m != 'tether.cli' or m.split('.')[0] in ('fastapi', 'numpy')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


def test_a_database_without_the_schema_says_to_upgrade_and_which_it_is(
    empty_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": empty_db_url}
    result = subprocess.run(
        [sys.executable, "-m", "tether", "payments", "status", "k"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 1
    said = " ".join(result.stderr.split())  # the console wraps long lines
    assert "no tether schema" in said and "tether db upgrade" in said
    assert "Traceback" not in result.stdout + result.stderr
    # embedded: which folder's PostgreSQL it was (a command run from another folder starts its
    # own, empty, instead of joining a demo's)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("TETHER_DATA_DIR", str(tmp_path / "data"))
    assert f"TETHER_DATA_DIR={tmp_path / 'data'}" in cli_output.which_database()
    monkeypatch.setenv("DATABASE_URL", empty_db_url)
    assert cli_output.which_database() == ""


def test_serve_states_its_defaults_and_refuses_a_port_out_of_range() -> None:
    shown = " ".join(CliRunner().invoke(cli.app, ["serve", "-h"]).output.replace("│", " ").split())
    assert "[TETHER_HOST; default: 127.0.0.1]" in shown
    assert "1-65535 [TETHER_PORT; default: 8000]" in shown
    bad = CliRunner().invoke(cli.app, ["serve", "--port", "99999"])
    assert bad.exit_code == 2 and "99999 is not a port: give 1 to 65535" in bad.output
    assert not isinstance(bad.exception, OverflowError)


def test_worker_only_names_the_capabilities_with_jobs_and_status_says_what_it_shows() -> None:
    from tether.capabilities import CAPABILITIES

    shown = " ".join(CliRunner().invoke(cli.app, ["worker", "-h"]).output.replace("│", " ").split())
    assert "<list[str]>" not in shown
    assert all(c.name in shown for c in CAPABILITIES if c.jobs)
    status = " ".join(
        CliRunner().invoke(cli.app, ["status", "-h"]).output.replace("│", " ").split()
    )
    assert "(what / shows)" not in status and "web console's home page" in status
