"""``tether payments send/status/case`` against a real database (no worker: statuses stop at
MOTTATT, which is what the commands must then show)."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from tether.cli import app

from .conftest import june, message


@pytest.fixture
def runner(db_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("DATABASE_URL", db_url)
    return CliRunner()


def test_send_then_status_then_case(runner: CliRunner, tmp_path: Path) -> None:
    file = tmp_path / "m.json"
    file.write_bytes(message(june(3, 14)))
    sent = runner.invoke(app, ["payments", "send", str(file), "--key", "k1", "--json"])
    assert sent.exit_code == 0, sent.output
    assert json.loads(sent.stdout)["status"] == "MOTTATT"
    status = runner.invoke(app, ["payments", "status", "k1"])
    assert status.exit_code == 0 and "MOTTATT" in status.output
    assert "2024-06-03..2024-06-14" in status.output
    case = runner.invoke(app, ["payments", "case", "sak1", "--json"])
    assert case.exit_code == 0, case.output
    body = json.loads(case.stdout)
    assert body["never_paid"] is True
    assert [o["original_key"] for o in body["orders"]] == ["k1"]


def test_unknown_key_exits_1_with_the_reason(runner: CliRunner) -> None:
    result = runner.invoke(app, ["payments", "status", "nope"])
    assert result.exit_code == 1 and result.stdout == ""
    assert "no message with key" in result.stderr


def test_dry_run_of_a_file_that_is_not_json_is_refused(runner: CliRunner, tmp_path: Path) -> None:
    file = tmp_path / "m.json"
    file.write_text("{oops")
    result = runner.invoke(app, ["payments", "send", str(file), "--dry-run"])
    assert result.exit_code == 2 and "m.json is not JSON" in " ".join(result.stderr.split())


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b"{bad", "m.json is not JSON (Expecting property name enclosed in double quotes"),
        (b"[]", "m.json holds an array, not a JSON object"),
        ('{"sakId": "Strøm"}'.encode("latin-1"), "m.json is not UTF-8 (byte 0xf8 at offset 14)"),
    ],
)
def test_a_file_that_is_no_json_object_is_refused_and_its_key_stays_free(
    runner: CliRunner, tmp_path: Path, body: bytes, said: str
) -> None:
    """Sent, ``{bad`` ended FEILET under k1 and used k1 up: the fixed file was a Conflict."""
    file = tmp_path / "m.json"
    file.write_bytes(body)
    result = runner.invoke(app, ["payments", "send", str(file), "--key", "k1"])
    assert result.exit_code == 2 and result.stdout == ""
    assert said in " ".join(result.stderr.replace("│", " ").split())
    assert "nothing sent" in result.stderr
    assert runner.invoke(app, ["payments", "status", "k1"]).exit_code == 1  # never taken
    file.write_bytes(message(june(3, 14)))
    fixed = runner.invoke(app, ["payments", "send", str(file), "--key", "k1"])
    assert fixed.exit_code == 0 and "k1: MOTTATT" in fixed.stdout


def test_a_key_reused_for_another_message_says_what_to_do(
    runner: CliRunner, tmp_path: Path
) -> None:
    first, other = tmp_path / "a.json", tmp_path / "b.json"
    first.write_bytes(message(june(3, 14)))
    other.write_bytes(message(june(3, 7)))
    assert runner.invoke(app, ["payments", "send", str(first), "--key", "k1"]).exit_code == 0
    refused = runner.invoke(app, ["payments", "send", str(other), "--key", "k1"])
    assert refused.exit_code == 1
    assert (
        "key 'k1' was used before for a different message: send it under a new --key "
        "(or omit --key for a new UUID)"
    ) in " ".join(refused.stderr.split())


def test_the_sample_message_of_the_help_and_the_docs_is_a_message() -> None:
    from tether.payments.cli import send
    from tether.payments.models import parse_message

    doc = send.__doc__ or ""
    parse_message(doc[doc.index("{") : doc.rindex("}") + 1].encode())
    guide = (Path(__file__).parents[2] / "docs" / "payments.md").read_text(encoding="utf-8")
    sample = guide.split("```json\n", 1)[1].split("```", 1)[0]
    assert parse_message(sample.encode()).sak_id == "sak-1"


@pytest.mark.parametrize("key", ["", "   ", "k" * 201])
def test_a_blank_or_overlong_key_is_bad_usage_and_nothing_is_sent(
    runner: CliRunner, tmp_path: Path, db_url: str, key: str
) -> None:
    """An empty --key used to send under a new UUID, and a blank one exited 1 quoting the
    HTTP header: all are usage errors (2), said in the option's terms."""
    file = tmp_path / "m.json"
    file.write_bytes(message(june(3, 14)))
    result = runner.invoke(app, ["payments", "send", str(file), "--key", key])
    assert result.exit_code == 2, result.output
    said = " ".join(result.stderr.replace("│", " ").split())
    assert "--key" in said and "1 to 200 characters" in said
    case = runner.invoke(app, ["payments", "case", "sak1"])
    assert case.exit_code == 1  # no message was taken: the case is unknown


def test_a_file_over_the_body_limit_is_refused_as_over_http(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TETHER_MAX_BODY_BYTES", "1000")
    file = tmp_path / "big.json"
    file.write_bytes(message(june(3, 14)) + b" " * 1000)
    result = runner.invoke(app, ["payments", "send", str(file), "--key", "big"])
    assert result.exit_code == 2, result.output
    assert "over TETHER_MAX_BODY_BYTES" in " ".join(result.stderr.replace("│", " ").split())
    assert runner.invoke(app, ["payments", "status", "big"]).exit_code == 1  # unknown key


def test_the_dry_run_option_says_what_it_needs(runner: CliRunner) -> None:
    result = CliRunner().invoke(app, ["payments", "send", "--help"], terminal_width=200)
    text = " ".join(result.output.split())
    assert "TETHER_PAYMENTS_OPPDRAG_URL" in text and "TETHER_PAYMENTS_OPPDRAG_TOKEN" in text


def test_status_waits_as_send_does(runner: CliRunner, tmp_path: Path) -> None:
    """One design on both: `--wait` alone waits 30 s, `--wait-s SECONDS` that long; `status k
    --wait` (a flag, as on `send`) was "Option '--wait' requires an argument"."""
    file = tmp_path / "m.json"
    file.write_bytes(message(june(3, 14)))
    assert runner.invoke(app, ["payments", "send", str(file), "--key", "w1"]).exit_code == 0
    for option in ("--wait", "--wait-s"):  # `--wait 0.2`: status's seconds as it took them
        waited = runner.invoke(app, ["payments", "status", "w1", option, "0.2"])
        assert waited.exit_code == 3, waited.output  # no worker: still MOTTATT when it ends
        assert "no final status after 0.2 s" in waited.stderr
    bare = runner.invoke(app, ["payments", "status", "nope", "--wait"])  # a flag: parsed
    assert bare.exit_code == 1 and "error: no message with key 'nope'" in bare.stderr


@pytest.mark.parametrize(
    "args", [["FILE", "--wait", "0.2"], ["FILE", "--wait=0.2"], ["--wait", "0.2", "FILE"]]
)
def test_send_wait_with_seconds_waits_that_long(
    runner: CliRunner, tmp_path: Path, db_url: str, args: list[str]
) -> None:
    """`status --wait 30` took seconds, so users tried `send --wait 30`: on both a number after
    --wait is read as --wait-s (a bare --wait still works)."""
    file = tmp_path / "m.json"
    file.write_bytes(message(june(3, 14)))
    argv = [str(file) if a == "FILE" else a for a in args]
    result = runner.invoke(app, ["payments", "send", *argv])
    assert result.exit_code == 3, result.output  # sent; no worker: still MOTTATT after 0.2 s
    assert "no final status after 0.2 s" in result.stderr
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM pay.inbound").fetchone() == (1,)


def test_errors_are_error_lines_never_wrapped_when_piped(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not ``NotFound: ...`` wrapped at 80 columns: ``error: ...`` in one line, as every
    command's (CliRunner is no terminal, as a pipe)."""
    monkeypatch.setenv("COLUMNS", "80")
    key = "k" * 150
    unknown = runner.invoke(app, ["payments", "status", key])
    assert unknown.exit_code == 1 and len(unknown.stderr.splitlines()) == 1
    assert unknown.stderr.startswith(
        "error: no message with key 'kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
    )
    file = tmp_path / "m.json"
    file.write_bytes(message(june(3, 14)))
    sent = runner.invoke(app, ["payments", "send", str(file), "--key", key, "--wait-s", "0.1"])
    assert sent.exit_code == 3
    assert sent.stdout.startswith(f"{key}: MOTTATT\n")
    assert sent.stderr.startswith("no final status after 0.1 s; still MOTTATT: the order is stored")
    assert len(sent.stderr.splitlines()) == 1


def test_a_body_that_is_not_json_says_so_without_a_second_key() -> None:
    """Over HTTP or NATS a body that is no JSON still ends FEILET 400; its reason said "key must
    be a string", read beside the original key as if that were wrong."""
    from tether.payments.models import PaymentValidationError, parse_message

    with pytest.raises(PaymentValidationError) as caught:
        parse_message(b"{bad")
    assert str(caught.value) == (
        "invalid message: body: not valid JSON: an object key must be a quoted string "
        "at line 1 column 2"
    )
