"""``tether keys``: what an operator reads in a narrow terminal or a pipe is enough to act on."""

from __future__ import annotations

import json
import subprocess
import sys

from tether.core import keys


def _tether(
    db_url: str, *args: str, columns: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": db_url}
    if columns is not None:
        env["COLUMNS"] = columns
    return subprocess.run(
        [sys.executable, "-m", "tether", "keys", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_list_never_cuts_a_key_id_short(db_url: str) -> None:
    """Piped (rich assumes 80 columns) or in a narrow terminal, every id is whole: ``keys
    revoke`` needs all of it. Long names wrap instead."""
    made = [
        keys.create(db_url, name, ["read", "write", "events", "admin"])[0]
        for name in ("a-rather-long-name-for-the-reporting-integration", "ci")
    ]
    keys.revoke(db_url, made[1].id)
    for columns in (None, "60"):
        listed = _tether(db_url, "list", columns=columns)
        assert listed.returncode == 0, listed.stderr
        for key in made:
            assert key.id in listed.stdout, listed.stdout
        assert "…" not in listed.stdout


def test_revoking_a_revoked_key_says_so(db_url: str) -> None:
    key, _ = keys.create(db_url, "twice", ["read"])
    first = _tether(db_url, "revoke", key.id)
    assert first.returncode == 0, first.stderr
    assert f"revoked key {key.id} (twice)" in first.stdout
    again = _tether(db_url, "revoke", key.id)
    assert again.returncode == 0, again.stderr
    assert f"key {key.id} (twice) was already revoked at " in again.stdout
    stored, already = keys.revoke(db_url, key.id)
    assert already and stored.revoked_at is not None
    [listed] = [k for k in keys.list_all(db_url) if k.id == key.id]
    assert listed.revoked_at == stored.revoked_at  # the first revocation's time is kept


def test_keys_cli_creates_lists_and_revokes(db_url: str) -> None:
    created = _tether(db_url, "create", "ci", "--scope", "read", "--scope", "write")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert keys.parse(secret) is not None
    key_id = secret.split("_")[1]
    listed = _tether(db_url, "list", "--json")
    rows = json.loads(listed.stdout)
    assert [(r["id"], r["scopes"], r["revoked_at"]) for r in rows] == [
        (key_id, ["read", "write"], None)
    ]
    assert secret not in listed.stdout
    assert _tether(db_url, "revoke", key_id).returncode == 0
    assert json.loads(_tether(db_url, "list", "--json").stdout)[0]["revoked_at"] is not None
    unknown = _tether(db_url, "revoke", "0" * 16)
    assert unknown.returncode == 1 and "no API key" in unknown.stderr
    bad = _tether(db_url, "create", "x", "--scope", "root")
    assert bad.returncode == 1 and "scopes must be" in bad.stderr and "Traceback" not in bad.stderr


def test_revoke_given_a_secret_revokes_by_its_id_and_never_prints_it(db_url: str) -> None:
    key, secret = keys.create(db_url, "pasted", ["read"])
    done = _tether(db_url, "revoke", secret)
    assert done.returncode == 0, done.stderr
    assert secret not in done.stdout + done.stderr
    assert secret.split("_", 2)[2] not in done.stdout + done.stderr
    assert f"revoking it by its id {key.id}" in done.stderr
    assert done.stdout == f"revoked key {key.id} (pasted)\n"
    cut = secret[:12]  # no whole id in it: refused, not echoed
    refused = _tether(db_url, "revoke", cut)
    assert refused.returncode == 1 and cut not in refused.stderr
    assert "looks like a key's secret" in refused.stderr


def test_scopes_may_be_given_as_a_comma_list_and_an_empty_list_says_what_to_do(
    db_url: str,
) -> None:
    empty = _tether(db_url, "list")
    assert empty.returncode == 0 and empty.stdout == ""
    assert "no keys yet: create one with `tether keys create NAME --scope read`" in empty.stderr
    assert _tether(db_url, "list", "--json").stdout.strip() == "[]"
    created = _tether(db_url, "create", "ci", "--scope", "read, write", "--scope", "events")
    assert created.returncode == 0, created.stderr
    [key] = keys.list_all(db_url)
    assert key.scopes == ("read", "write", "events")
