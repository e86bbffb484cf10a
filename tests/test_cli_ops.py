"""The CLI an operator meets: --version, -h everywhere, --json on read commands, read commands
that never migrate, one-line errors that say what to do, and the embedded server's lifecycle."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.core.test_serve_process import free_port
from tests.test_cli import COMMANDS
from tether import __version__

BASE_ENV = {"PATH": "/usr/bin:/bin", "COLUMNS": "120", "HOME": os.environ.get("HOME", "/root")}


def tether(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tether", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**BASE_ENV, **env},
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 or lines[0].startswith("error:"), result.stderr
    return " ".join(lines)


def test_version() -> None:
    result = tether("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"tether {__version__}"


@pytest.mark.parametrize("path", COMMANDS, ids=lambda c: " ".join(c) or "tether")
def test_dash_h_is_help_on_every_command(path: tuple[str, ...]) -> None:
    from typer.testing import CliRunner

    from tether import cli

    result = CliRunner().invoke(cli.app, [*path, "-h"], terminal_width=120)
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output and "--help" in result.output


def _migrated(url: str) -> bool:
    with psycopg.connect(url) as conn:
        found = conn.execute("SELECT to_regclass('tether.schema_migration')").fetchone()
    return bool(found and found[0])


def test_db_status_json_lists_pending_migrations_and_applies_none(empty_db_url: str) -> None:
    result = tether("db", "status", "--json", DATABASE_URL=empty_db_url)
    assert result.returncode == 0, result.stderr
    pending = json.loads(result.stdout)["pending"]
    assert {"component": "tether.accountingpoints", "version": 1, "name": "schema"} in pending
    assert not _migrated(empty_db_url)


def test_status_refuses_an_unmigrated_database_and_leaves_it_so(empty_db_url: str) -> None:
    message = one_line_error(tether("status", DATABASE_URL=empty_db_url))
    assert "pending migration" in message and "tether db upgrade" in message
    assert not _migrated(empty_db_url)


def test_status_json_has_every_capability_panel(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO ap.accounting_point (gsrn) VALUES ('707057500000000018')")
        conn.execute(
            "INSERT INTO ap.controllable_unit (name, accounting_point_id) "
            "SELECT 'cu', id FROM ap.accounting_point"
        )
    result = tether("status", "--json", DATABASE_URL=db_url)
    assert result.returncode == 0, result.stderr
    panels = {p["title"]: p for p in json.loads(result.stdout)["panels"]}
    assert set(panels) == {
        "Service",
        "Accounting points",
        "E-licensing",
        "Payment orders",
        "Accruals",
    }
    service = {r["label"]: r for r in panels["Service"]["rows"]}
    assert service["workers"]["value"] == "0 alive" and service["workers"]["status"] == "bad"
    rows = {r["label"]: r for r in panels["Accounting points"]["rows"]}
    assert rows["never synced"]["value"] == "1" and rows["never synced"]["status"] == "warn"
    assert {r["label"] for r in panels["E-licensing"]["rows"]} >= {"circuit", "stale invoices"}
    assert rows["circuit"]["value"] == "closed"  # the datahub's circuit, as e-licensing's
    human = tether("status", DATABASE_URL=db_url)
    assert human.returncode == 0 and "never synced" in human.stdout
    assert "0 alive" in human.stdout  # the Service panel: no worker runs


def test_db_url_json(db_url: str) -> None:
    result = tether("db", "url", "--json", DATABASE_URL=db_url)
    assert json.loads(result.stdout) == {"database_url": db_url}


def long_running() -> tuple[tuple[str, ...], ...]:
    """``serve`` (on a free port: a taken one is an error of its own) and ``worker``: they printed
    uvicorn's lifespan traceback (exit 3), or took a ``mysql://`` URL for an exposed database."""
    return (("serve", "--port", str(free_port())), ("worker", "--once"))


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://u:s3cr3t@h/db", "must start with postgresql://"),
        ("not a url", "DATABASE_URL is malformed"),
        ("postgresql://u:s3cr3t@h:port/db", "is not a number"),
        ("postgresql://u:s3cr3t@127.0.0.1:abc/x", "is not a number"),
        ("postgresql://u:s3cr3t@[::1/x", 'in URI: "postgresql://u:***@[::1/x"'),
        ("postgresql://u:s3@cr3t@[::1/x", "DATABASE_URL is malformed"),
        ("postgresql://u@[::1/x?password=s3cr3t", "postgresql://u@[::1/x?password=***"),
    ],
)
def test_a_malformed_database_url_is_one_line_without_its_password(url: str, says: str) -> None:
    commands = (("db", "status"), ("status",), ("elicensing", "invoice", "101"), *long_running())
    for args in commands:
        message = one_line_error(tether(*args, DATABASE_URL=url))
        assert says in message and "postgresql://user:password@host:5432/dbname" in message
        assert "s3cr3t" not in message and "cr3t" not in message


def test_an_unreachable_database_is_one_line() -> None:
    url = "postgresql://nobody:s3cr3t@127.0.0.1:1/none"
    commands = (("status",), ("elicensing", "invoice", "101", "--json"), ("db", "status"))
    for args in (*commands, *long_running(), ("serve", "--no-migrate", "--port", str(free_port()))):
        message = one_line_error(tether(*args, DATABASE_URL=url))
        assert "s3cr3t" not in message
        assert "cannot connect to PostgreSQL at 127.0.0.1:1 (Connection refused)" in message
        assert "Check DATABASE_URL" in message


def test_a_port_in_use_is_one_line(db_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        message = one_line_error(tether("serve", "--port", str(port), DATABASE_URL=db_url))
    assert f"cannot listen on 127.0.0.1:{port}" in message and "--port" in message


@pytest.mark.timeout(400)
@pytest.mark.xdist_group("tether_demo")  # every demo serves its simulators on the same ports
def test_the_cli_finds_a_running_demo_s_database_and_db_stop_stops_the_server(
    private_dir: Path,
) -> None:
    data = private_dir / "data"
    env = {
        "TETHER_DATA_DIR": str(data),
        "TETHER_AP_DEMO_ACCOUNTING_POINTS": "12",
        "TETHER_AP_DEMO_CONTROLLABLE_UNITS": "3",
    }
    demo = subprocess.Popen(
        [sys.executable, "-m", "tether", "demo", "--port", "0", "--duration", "240"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**BASE_ENV, **env},
    )
    try:
        assert demo.stdout is not None
        printed = ""
        while "Ctrl-C stops everything." not in printed:
            line = demo.stdout.readline()
            assert line, printed
            printed += line
        assert "Database" in printed and "tether_demo" in printed
        during = json.loads(tether("db", "url", "--json", **env).stdout)["database_url"]
        assert psycopg.conninfo.conninfo_to_dict(during)["dbname"] == "tether_demo"
        status = tether("status", "--json", **env)
        assert status.returncode == 0, status.stderr
        panels = {p["title"]: p for p in json.loads(status.stdout)["panels"]}
        rows = {r["label"]: r["value"] for r in panels["Accounting points"]["rows"]}
        assert rows["kept in sync"] == "3"  # the demo's units, not an empty default database
    finally:
        demo.send_signal(signal.SIGINT)
        rest, _ = demo.communicate(timeout=120)
    assert demo.returncode == 0
    assert "`tether db stop` stops it" in rest
    assert (data / "pgdata" / "postmaster.pid").exists()  # the demo leaves the server running
    after = json.loads(tether("db", "url", "--json", **env).stdout)["database_url"]
    assert psycopg.conninfo.conninfo_to_dict(after)["dbname"] != "tether_demo"
    stopped = tether("db", "stop", **env)
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped the embedded PostgreSQL" in stopped.stdout
    assert not (data / "pgdata" / "postmaster.pid").exists()
    again = tether("db", "stop", **env)
    assert again.returncode == 0 and "no embedded PostgreSQL is running" in again.stdout


def test_accounting_point_show_json_and_an_unmigrated_database(
    db_url: str, empty_db_url: str
) -> None:
    gsrn = "707057500000000018"
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO ap.accounting_point (gsrn) VALUES (%s)", [gsrn])
        conn.execute(
            "INSERT INTO ap.controllable_unit (name, accounting_point_id) "
            "SELECT 'battery-1', id FROM ap.accounting_point"
        )
    shown = tether("accounting-points", "show", gsrn, "--json", DATABASE_URL=db_url)
    assert shown.returncode == 0, shown.stderr
    body = json.loads(shown.stdout)
    assert body["gsrn"] == gsrn and body["sync"]["last_synced_at"] is None
    assert [u["name"] for u in body["controllable_units"]] == ["battery-1"]
    human = tether("accounting-points", "show", gsrn, DATABASE_URL=db_url)
    assert f"accounting point {gsrn}: last synced never" in human.stdout
    unknown = one_line_error(
        tether("accounting-points", "show", "707057500000000025", DATABASE_URL=db_url)
    )
    assert "no accounting point 707057500000000025" in unknown
    bare = one_line_error(tether("accounting-points", "show", gsrn, DATABASE_URL=empty_db_url))
    assert "run `tether db upgrade` first" in bare
    assert not _migrated(empty_db_url)
