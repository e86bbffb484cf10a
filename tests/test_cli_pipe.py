"""Commands piped as a script pipes them: results on stdout, one line each however long (rich
assumes 80 columns in a pipe), and nothing but logs on stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tether.core import keys

PIPED_ENV = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")}  # no COLUMNS


def piped(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "tether", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**PIPED_ENV, "DATABASE_URL": db_url, "TETHER_LOG_LEVEL": "WARNING"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr.strip() == "", done.stderr  # a result there is lost to the pipe
    return done


def test_db_and_keys_results_go_to_stdout(empty_db_url: str) -> None:
    upgraded = piped(empty_db_url, "db", "upgrade")
    assert "applied tether.core 0001_history" in upgraded.stdout.splitlines()
    assert "database is up to date" in upgraded.stdout
    assert piped(empty_db_url, "db", "status").stdout.endswith("0 pending migration(s)\n")
    key, _ = keys.create(empty_db_url, "piped", ["read"])
    revoked = piped(empty_db_url, "keys", "revoke", key.id)
    assert revoked.stdout == f"revoked key {key.id} (piped)\n"


def test_capability_results_go_to_stdout_one_line_each(db_url: str, tmp_path: Path) -> None:
    env = {**PIPED_ENV, "DATABASE_URL": db_url, "TETHER_LOG_LEVEL": "WARNING"}
    release = [sys.executable, "-m", "tether", "accounting-points", "release", "gone-host:1"]
    nothing = subprocess.run(release, capture_output=True, text=True, timeout=120, env=env)
    assert nothing.returncode == 1 and nothing.stdout == ""  # nothing matched: said on stderr
    assert len(nothing.stderr.splitlines()) == 1 and "host:pid" in nothing.stderr
    csv = tmp_path / "areas.csv"
    csv.write_text("business_id,name\n10YNO-1--------2,NO1\n")
    loaded = piped(db_url, "accounting-points", "grid-areas", "load", str(csv))
    assert loaded.stdout == "loaded 1 grid-areas\n"

    name = "A Very Long Operator Legal Name Incorporated of Northern British Columbia"
    registered = piped(
        db_url, "elicensing", "obligations", "register", "7", "--invoice-number", "INV-7",
        "--client-object-id", "77", "--client-guid", "0b3c5a1e-0000-4000-8000-000000000007",
        "--operator-name", name, "--cra-business-number", "123456789",
        "--obligation-id", "24-0001-1-1", "--fee-amount", "1234.50", "--reporting-year", "2024",
    )  # fmt: skip
    [line] = registered.stdout.splitlines()
    assert line.startswith("registered: report version 7") and f"{name} (123456789)" in line

    files = tmp_path / "accruals"
    generated = piped(
        db_url, "accruals", "generate", str(files), "--accounts", "2", "--months", "1"
    )
    assert generated.stdout.strip().endswith(f"-> {files}")
    tariffs = piped(db_url, "accruals", "load", "tariffs", str(files / "tariffs.csv"))
    assert tariffs.stdout.startswith(f"loaded {files / 'tariffs.csv'}: ")
    ingested = piped(db_url, "accruals", "ingest", str(files / "nem12"))
    lines = ingested.stdout.splitlines()
    assert lines and all(x.startswith("loaded ") and x.endswith(" 0 errors") for x in lines)
