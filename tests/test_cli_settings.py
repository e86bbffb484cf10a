"""A ``TETHER_*`` value that cannot work stops any command with one line naming the variable
(exit 2, as a bad option), before it connects anywhere; an unknown ``TETHER_*`` name is warned
of, with the closest real one."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tether.cli import settings_classes
from tether.core.errors import InvalidSetting
from tether.core.setting_types import variable
from tether.core.settings import Settings, known_variables, load_settings

ROOT = Path(__file__).resolve().parents[1]
NO_DATABASE = "postgresql://nobody@127.0.0.1:1/none"  # reached only if the check let it through


def tether(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tether", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": NO_DATABASE, **env},
    )


CASES = [
    ("TETHER_PORT", "abc", ["keys", "list"], "not a whole number (e.g. 8000)"),
    ("TETHER_DB_POOL_MAX", "x", ["keys", "list"], "not a whole number (e.g. 10)"),
    ("TETHER_LOG_JSON", "maybe", ["keys", "list"], "give true or false"),
    ("TETHER_LOG_LEVEL", "LOUD", ["serve"], "give DEBUG, INFO, WARNING, ERROR or CRITICAL"),
    ("TETHER_PORT", "99999", ["serve"], "out of range: give at most 65535"),
    ("TETHER_NATS_URL", "localhost:4222", ["worker", "--once"], "starting nats://"),
    ("TETHER_ACCRUALS_AS_AT_LAG_DAYS", "x", ["accruals", "purge-superseded", "--dry-run"],
     "(e.g. 7)"),
    ("TETHER_PAYMENTS_OPPDRAG_TIMEOUT_S", "abc", ["payments", "status", "k"], "not a number"),
    ("TETHER_PAYMENTS_OPPDRAG_URL", "127.0.0.1:7003", ["payments", "status", "k"], "http://"),
    ("TETHER_AP_UNKNOWN_PARTY", "maybe", ["accounting-points", "show", "707057500000000018"],
     "give 'reject' or 'accept_unverified'"),
    ("TETHER_AP_TIMEZONE", "Mars/Base", ["accounting-points", "show", "707057500000000018"],
     "not a time zone: give an IANA name such as Europe/Oslo"),
    ("TETHER_AP_ADAPTER_URL", "adapter:7001", ["accounting-points", "show", "707057500000000018"],
     "not a URL with a host starting http:// or https://"),
    ("TETHER_ELICENSING_TIMEZONE", "Mars/Base", ["elicensing", "invoice", "1"], "Europe/Oslo"),
    ("TETHER_AP_EVENT_TYPES", "one,two", ["status"], "not JSON (e.g. ["),
    ("TETHER_LOG_LEVEL", "LOUD", ["simulate", "elicensing", "--port", "0"], "CRITICAL"),
    ("TETHER_PORT", "abc", ["demo", "--duration", "1"], "not a whole number"),
    ("TETHER_SEND_TIMEOUT_S", "inf", ["serve"], "not a finite number (e.g. 30.0)"),
    ("TETHER_HEAD_TIMEOUT_S", "inf", ["serve"], "not a finite number (e.g. 10.0)"),
    ("TETHER_ELICENSING_READ_TIMEOUT_S", "-inf", ["elicensing", "invoice", "1"], "finite"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "value", "command", "reason"), CASES, ids=lambda c: str(c))
def test_a_bad_value_is_one_line_naming_the_variable(
    name: str, value: str, command: list[str], reason: str
) -> None:
    done = tether(*command, **{name: value})
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith(f"error: {name}={value!r}: ") and reason in line, line
    assert done.stdout == ""


def test_no_number_setting_takes_inf(monkeypatch: pytest.MonkeyPatch) -> None:
    """``inf`` passed every ``gt=0`` bound and silently turned a time limit off (nan did not:
    it is no more than 0): every float setting of every class refuses both."""
    floats = [
        (cls, field)
        for cls in settings_classes()
        for field, info in cls.model_fields.items()
        if float in (info.annotation, *getattr(info.annotation, "__args__", ()))
    ]
    assert len(floats) > 20
    for cls, field in floats:
        for value in ("inf", "-Infinity", "nan"):
            with monkeypatch.context() as env:
                env.setenv(variable(cls, field), value)
                with pytest.raises(InvalidSetting, match=r": not a finite number"):
                    cls()


def test_help_is_shown_whatever_the_environment() -> None:
    done = tether("simulate", "elicensing", "--help", TETHER_PORT="abc")
    assert done.returncode == 0 and "Usage" in done.stdout, done.stderr


def test_a_malformed_upstream_url_never_reaches_the_client_or_its_circuit(db_url: str) -> None:
    """It was taken for an outage (UnsupportedProtocol) and opened the shared circuit."""
    rows = "SELECT name, state, failures, last_failure FROM tether.circuit_breaker ORDER BY 1"
    with psycopg.connect(db_url) as conn:
        before = conn.execute(rows).fetchall()
    env = {"DATABASE_URL": db_url, "TETHER_ELICENSING_URL": "notaurl"}
    for _ in range(3):  # the breaker's default threshold
        done = tether("elicensing", "invoice", "1", **env)
        assert done.returncode == 2
        assert done.stderr == (
            "error: TETHER_ELICENSING_URL='notaurl': not a URL with a host starting http:// or "
            "https:// (e.g. https://host.example:8443)\n"
        )
    with psycopg.connect(db_url) as conn:
        assert conn.execute(rows).fetchall() == before


def test_an_unknown_name_is_warned_of_with_the_closest_one() -> None:
    done = tether("db", "url", TETHER_API_PORT="abc", TETHER_TEST_DATABASE_URL=NO_DATABASE)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{NO_DATABASE}\n"
    assert done.stderr.splitlines() == [
        "unknown variable TETHER_API_PORT is ignored (no tether setting has that name); "
        "did you mean TETHER_PORT?"
    ]
    quiet = tether("db", "url", TETHER_ADAPTER_TOKEN="x", TETHER_AP_TIMEZONE="UTC")
    assert quiet.returncode == 0 and quiet.stderr == ""  # read by `simulate datahub`; a setting


def test_every_tether_variable_the_code_names_is_known() -> None:
    """A new variable read outside the settings classes (a test's, a simulator's fallback) is
    added to ``NOT_SETTINGS`` or a class's ``also_read``, or users of it get the warning."""
    text = "\n".join(
        p.read_text()
        for folder in ("tether", "tests", "bench")
        for p in (ROOT / folder).rglob("*.py")
        if p.name != Path(__file__).name  # its made-up names
    )
    text = text.replace("TETHER_API_PORT", "").replace("TETHER_X=", "")  # docstrings' examples
    named = set(re.findall(r"\bTETHER_[A-Z0-9_]*[A-Z0-9]\b", text))
    prefixes = {"TETHER_AP", "TETHER_ACCRUALS", "TETHER_ELICENSING", "TETHER_PAYMENTS"}
    prefixes |= {"TETHER_SIMULATOR", "TETHER_CAPABILITY"}
    assert named - known_variables(settings_classes()) - prefixes == set()


def test_values_are_explained_without_secrets_and_blanks_stay_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TETHER_OIDC_JWKS_URL", "ftp://user:hunter2@idp.example/jwks")
    with pytest.raises(InvalidSetting) as raised:
        load_settings()
    assert "hunter2" not in raised.value.message
    assert "TETHER_OIDC_JWKS_URL='ftp://user:<HIDDEN>@idp.example/jwks'" in raised.value.message
    monkeypatch.setenv("TETHER_OIDC_JWKS_URL", "")  # empty: unset, as before
    monkeypatch.setenv("TETHER_NATS_URL", "")
    monkeypatch.setenv("TETHER_LOG_LEVEL", "warning")
    settings = load_settings()
    assert (settings.oidc_jwks_url, settings.nats_url, settings.log_level) == (
        None,
        None,
        "WARNING",
    )
    with pytest.raises(InvalidSetting, match=r"^TETHER_PORT='x': .*; TETHER_LOG_JSON='maybe': "):
        Settings(port="x", log_json="maybe")  # every bad value at once, as an override too
