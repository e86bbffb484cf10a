"""``tether db status`` and ``db url`` report without starting the embedded server; ``db start``
and ``db stop`` are what start and stop it. ``db url`` prints a URL whole, for scripts; a status
masks the password."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from tests.test_cli_ops import one_line_error, tether
from tether.capabilities import migration_components
from tether.core import demorun, migrations
from tether.db_cli import masked


def test_status_and_url_start_no_server_and_start_and_stop_do(private_dir: Path) -> None:
    data = private_dir / "data"
    env = {"TETHER_DATA_DIR": str(data)}
    pid_file = data / "pgdata" / "postmaster.pid"
    try:
        status = tether("db", "status", "--json", **env)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout) == {
            "server": "embedded",
            "running": False,
            "data_dir": str(data.resolve()),
            "database_url": None,
            "pending": None,
        }
        human = tether("db", "status", **env)
        assert human.returncode == 0
        assert human.stdout == f"embedded PostgreSQL not running in {data.resolve()}\n"
        assert "tether db start" in human.stderr  # advice, not a result
        refused = tether("db", "url", **env)
        assert refused.stdout == ""
        assert "tether db start" in one_line_error(refused)
        panels = tether("status", **env)  # tether status reports too: it starts nothing
        assert panels.returncode != 0 and "tether db start" in one_line_error(panels)
        assert not pid_file.exists()  # none of them started a server

        started = tether("db", "start", **env)
        assert started.returncode == 0, started.stderr
        assert f"embedded PostgreSQL running in {data.resolve()}" in started.stdout
        url = tether("db", "url", **env).stdout.strip()
        assert url.startswith("postgresql://"), url
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute('CREATE DATABASE "tether_demo"')
        with demorun.hold(data):  # as a running demo does
            demorun.set_active_database(data, "tether_demo")  # what it leaves for the CLI
            demo_url = tether("db", "url", **env).stdout.strip()
            assert demo_url.startswith("postgresql://"), demo_url  # a URL, as the docs say
            with psycopg.connect(demo_url) as conn:
                assert conn.execute("SELECT current_database()").fetchone() == ("tether_demo",)
        demorun.set_active_database(data, "tether_demo")  # what a killed demo leaves behind
        (data / demorun.ENV).write_text("TETHER_EVENTS_TOKEN=x\n")
        stale = tether("db", "url", **env)
        assert stale.stdout.strip() == url  # not "the running demo"'s any more
        assert stale.stderr.count("no longer runs") == 1, stale.stderr
        assert not (data / demorun.ACTIVE_DATABASE).exists() and not (data / demorun.ENV).exists()
        assert "no longer runs" not in tether("db", "url", **env).stderr  # said once
        running = json.loads(tether("db", "status", "--json", **env).stdout)
        assert running["running"] is True and running["database_url"] == url  # no password
        assert {"component": "tether.core", "version": 1, "name": "history"} in running["pending"]
        unmigrated = tether("status", **env)  # found the running server: refuses to migrate it
        assert "tether db upgrade" in one_line_error(unmigrated)
    finally:
        stopped = tether("db", "stop", **env)
    assert stopped.returncode == 0 and "stopped the embedded PostgreSQL" in stopped.stdout
    assert not pid_file.exists()


def _one_shot(message: Path) -> list[tuple[str, ...]]:
    """A command of each kind that is not a server: sends, keys, migrations, claims, reads."""
    return [
        ("payments", "send", str(message), "--wait"),
        ("keys", "create", "ops", "--scope", "read"),
        ("db", "upgrade"),
        ("accounting-points", "release", "worker-1"),
        ("elicensing", "invoice", "101"),
        ("accruals", "runs"),
    ]


def test_one_shot_commands_start_no_server_and_use_a_started_one(private_dir: Path) -> None:
    data = private_dir / "data"
    env = {"TETHER_DATA_DIR": str(data), "TETHER_LOG_LEVEL": "INFO"}
    message = private_dir / "message.json"
    message.write_text("{}")
    try:  # stops what a command started all the same, should one start a server again
        for command in _one_shot(message):
            refused = tether(*command, **env)
            assert refused.returncode == 1, (command, refused.stdout, refused.stderr)
            assert "tether db start" in refused.stderr, (command, refused.stderr)
            assert "Traceback" not in refused.stderr, command
            assert not (data / "pgdata").exists(), command  # no initdb: no server left running
        started = tether("db", "start", **env)
        assert "embedded postgres started" in started.stderr, started.stderr
        joined = tether("db", "start", **env)  # the log says "started" only when it did
        assert joined.returncode == 0 and "embedded postgres started" not in joined.stderr
        upgraded = tether("db", "upgrade", **env)
        assert upgraded.returncode == 0 and "database is up to date" in upgraded.stdout
        key = tether("keys", "create", "ops", "--scope", "read", **env)
        assert key.returncode == 0 and key.stdout.startswith("tth_"), key.stderr
        runs = tether("accruals", "runs", "--json", **env)
        assert runs.returncode == 0 and json.loads(runs.stdout) == [], runs.stderr
        released = tether("accounting-points", "release", "worker-1", **env)
        assert released.returncode == 1 and "no claims held by 'worker-1'" in released.stderr
        sent = tether("payments", "send", str(message), "--json", **env)  # stored: FEILET 400
        assert json.loads(sent.stdout)["status"] == "FEILET", sent.stderr
    finally:
        tether("db", "stop", **env)


def test_url_prints_database_url_whole_and_status_masks_its_password(db_url: str) -> None:
    params = psycopg.conninfo.conninfo_to_dict(db_url)
    with_password = psycopg.conninfo.make_conninfo(**{**params, "password": "s3cret"})  # type: ignore[arg-type]
    printed = tether("db", "url", DATABASE_URL=with_password)
    assert printed.returncode == 0 and printed.stdout.strip() == with_password
    status = tether("db", "status", "--json", DATABASE_URL=with_password)
    assert status.returncode == 0, status.stderr
    body = json.loads(status.stdout)
    assert body["server"] == "DATABASE_URL" and body["pending"] == []
    assert "s3cret" not in status.stdout and "password=***" in body["database_url"]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:pw@db:5432/tether", "postgresql://app:***@db:5432/tether"),
        ("postgresql://app@db/tether", "postgresql://app@db/tether"),
        (
            "postgresql://postgres:@/postgres?host=/run",
            "postgresql://postgres:@/postgres?host=/run",
        ),
        ("host=db password='a b' dbname=t", "host=db password=*** dbname=t"),
    ],
)
def test_masked_hides_only_a_password(url: str, shown: str) -> None:
    assert masked(url) == shown


def test_db_upgrade_says_each_migration_once(empty_db_url: str) -> None:
    """Its result line on stdout; the INFO log said each again on stderr (35 + 35 lines)."""
    upgraded = tether("db", "upgrade", DATABASE_URL=empty_db_url, TETHER_LOG_LEVEL="INFO")
    assert upgraded.returncode == 0, upgraded.stderr
    said = (upgraded.stdout + upgraded.stderr).splitlines()
    assert "applied tether.core 0001_history" in upgraded.stdout.splitlines()
    assert [line for line in said if "0001_history" in line] == ["applied tether.core 0001_history"]
    assert "migration_applied" not in upgraded.stderr
    listed = [line for line in upgraded.stdout.splitlines() if line.startswith("applied ")]
    assert len(listed) == len(migrations.discover(migration_components()))  # each one
