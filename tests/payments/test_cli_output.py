"""What ``tether payments`` prints and exits with, as a user and a script see it: user data never
read as Rich markup, results on stdout and errors on stderr, exit codes by final status, dry runs
and duplicates told apart, a case readable at 80 columns. Real database, no worker: a case is
confirmed by booking the payment system's receipts through the service, as the worker does."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from tether.cli import app
from tether.core import db, loop
from tether.payments import codec, repository
from tether.payments.client import OppdragClient
from tether.payments.oppdrag import build_receipt_xml
from tether.payments.service import PaymentsService
from tether.payments.simulator import start_simulator

from .conftest import day, june, message, unique_settings, unique_topology


@pytest.fixture
def runner(db_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("TETHER_PAYMENTS_OPPDRAG_URL", "http://127.0.0.1:9")  # nothing listens
    monkeypatch.setenv("COLUMNS", "80")
    return CliRunner()


def _file(tmp_path: Path, body: bytes | str, name: str = "m.json") -> Path:
    file = tmp_path / name
    file.write_bytes(body.encode() if isinstance(body, str) else body)
    return file


def _cli(runner: CliRunner, *args: str) -> Result:
    result = runner.invoke(app, ["payments", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def _with_service(db_url: str, work: Any) -> Any:
    async def run() -> Any:
        pool = db.make_pool(db_url, min_size=1, max_size=2)
        await pool.open(wait=True)
        try:
            own = unique_settings()
            async with OppdragClient.from_settings(own) as client:
                return await work(PaymentsService(pool=pool, settings=own, client=client))
        finally:
            await pool.close()

    return loop.run(run())


def _answer(db_url: str, key: str, body: bytes, code: str) -> None:
    """Take a message and book the payment system's receipt ``code`` for its order."""

    async def work(service: PaymentsService) -> None:
        await service.submit(key, body)
        order = next(o for o in await service.orders("sak1") if o.original_key == key)
        raw = build_receipt_xml(order.xml, code)
        assert await service.apply_receipts([(codec.read_receipt(raw), raw)])

    _with_service(db_url, work)


# --- 1. user data is never markup ---------------------------------------------------------------


@pytest.mark.parametrize("key", ["x[/b]", "[red]", "[bold]k\\"])
def test_keys_that_look_like_markup_are_printed_as_given(
    runner: CliRunner, tmp_path: Path, key: str
) -> None:
    file = _file(tmp_path, "{}")  # no message: FEILET 400, under the key as given
    sent = _cli(runner, "send", str(file), "--key", key)
    assert f"{key}: FEILET" in sent.stdout
    status = _cli(runner, "status", key)
    assert f"{key}: FEILET" in status.stdout


def test_error_texts_that_look_like_markup_go_to_stderr_as_given(runner: CliRunner) -> None:
    unknown = _cli(runner, "status", "nope[/i]")
    assert unknown.exit_code == 1 and unknown.stdout == ""
    assert "no message with key 'nope[/i]'" in unknown.stderr
    case = _cli(runner, "case", "[red]sak")
    assert case.exit_code == 1 and case.stdout == ""
    assert "no case DAGPENGER/[red]sak" in case.stderr


def test_ids_in_the_case_view_are_printed_as_given(
    runner: CliRunner, tmp_path: Path, db_url: str
) -> None:
    _with_service(db_url, lambda s: s.submit("[bold]k[/x]", message(june(3, 7), sak="[red]s")))
    case = _cli(runner, "case", "[red]s")
    assert case.exit_code == 0
    assert "MOTTATT (key [bold]k[/x])" in case.stdout


# --- 2. a file that cannot be read --------------------------------------------------------------


def test_a_directory_or_a_missing_file_is_a_usage_error(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # short names: the error panel does not wrap them
    (tmp_path / "folder").mkdir()
    folder = _cli(runner, "send", "folder")
    assert folder.exit_code == 2 and "'folder' is a directory" in folder.stderr
    missing = _cli(runner, "send", "none.json")
    assert missing.exit_code == 2 and "'none.json' does not exist" in missing.stderr


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="Linux's /proc")
def test_a_file_that_fails_to_read_is_a_usage_error(runner: CliRunner) -> None:
    """A file that passes the checks and still fails (here a read error even root gets)."""
    result = _cli(runner, "send", "/proc/self/mem")
    assert result.exit_code == 2, result.output
    assert "cannot read /proc/self/mem (" in result.stderr


# --- 3. a dry run needs a message object --------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "kind"), [("[]", "an array"), ('"x"', "a string"), ("3", "a number")]
)
def test_a_dry_run_of_json_that_is_no_object_is_refused_and_nothing_is_taken(
    runner: CliRunner, tmp_path: Path, body: str, kind: str
) -> None:
    file = _file(tmp_path, body)
    result = _cli(runner, "send", str(file), "--dry-run", "--key", "arr")
    assert result.exit_code == 2, result.output
    assert f"holds {kind}, not a JSON object" in " ".join(result.stderr.split())
    assert _cli(runner, "status", "arr").exit_code == 1  # never taken


def test_without_dry_run_json_that_is_no_object_is_refused_too(
    runner: CliRunner, tmp_path: Path
) -> None:
    result = _cli(runner, "send", str(_file(tmp_path, "[]")), "--key", "arr")
    assert result.exit_code == 2 and "holds an array" in " ".join(result.stderr.split())
    assert _cli(runner, "status", "arr").exit_code == 1  # never taken


# --- 4 and 5. exit codes and --wait -------------------------------------------------------------


def test_feilet_exits_1_on_send_and_on_status(runner: CliRunner, tmp_path: Path) -> None:
    file = _file(tmp_path, "{}")  # an object, but no message: FEILET 400 under its key
    assert _cli(runner, "send", str(file), "--key", "bad").exit_code == 1
    assert _cli(runner, "status", "bad").exit_code == 1
    assert _cli(runner, "status", "bad", "--json").exit_code == 1


def test_a_feilet_receipt_exits_1_and_an_ok_receipt_0(runner: CliRunner, db_url: str) -> None:
    _answer(db_url, "k1", message(june(3, 7)), "08")
    refused = _cli(runner, "status", "k1")
    assert refused.exit_code == 1 and "k1: FEILET" in refused.stdout
    _answer(db_url, "k2", message(june(3, 7), behandling="b2"), "00")
    assert _cli(runner, "status", "k2").exit_code == 0


def test_a_wait_that_ends_before_a_final_status_says_so_and_exits_3(
    runner: CliRunner, tmp_path: Path
) -> None:
    file = _file(tmp_path, message(june(3, 7)))
    sent = _cli(runner, "send", str(file), "--key", "k1", "--wait-s", "0.2")
    assert sent.exit_code == 3 and "k1: MOTTATT" in sent.stdout
    assert "no final status after 0.2 s; still MOTTATT" in " ".join(sent.stderr.split())
    assert "the worker needs TETHER_NATS_URL" in " ".join(sent.stderr.split())
    waited = _cli(runner, "status", "k1", "--wait", "0.2")
    assert waited.exit_code == 3 and "no final status after 0.2 s" in waited.stderr
    assert _cli(runner, "status", "k1").exit_code == 0  # not waited for: not final is no failure


def test_a_wait_at_the_payment_system_names_tethers_own_follow_up(
    runner: CliRunner, tmp_path: Path, db_url: str
) -> None:
    async def sent(service: PaymentsService) -> None:
        await service.submit("k1", message(june(3, 7)))
        (order,) = await service.orders("sak1")
        async with db.autocommit(service.pool) as conn:
            await repository.book_sends(conn, sent=[order.id])

    _with_service(db_url, sent)
    result = _cli(runner, "status", "k1", "--wait", "0.1")
    assert result.exit_code == 3
    said = " ".join(result.stderr.split())
    assert "still HOS_OPPDRAG: tether asks the payment system itself after" in said
    assert "TETHER_PAYMENTS_RECEIPT_TIMEOUT_S (300 s)" in said


def test_a_bare_wait_still_works_as_the_demo_prints_it(runner: CliRunner, tmp_path: Path) -> None:
    final_at_once = _file(tmp_path, message(june(3, 7, 0)))
    result = _cli(runner, "send", str(final_at_once), "--dry-run", "--wait")
    assert result.exit_code == 0 and ": OK" in result.stdout


def test_help_states_the_exit_codes_and_the_wait(runner: CliRunner) -> None:
    for command in ("send", "status"):
        shown = " ".join(_cli(runner, command, "--help").stdout.split())
        assert "Exit codes: 0 OK" in shown and "1 FEILET" in shown and "3 --wait" in shown
    assert "Wait up to 30 s" in " ".join(_cli(runner, "send", "--help").stdout.split())


# --- 6. dry runs, nothing changed, duplicates ---------------------------------------------------


def test_a_dry_run_is_marked_as_simulated(runner: CliRunner, tmp_path: Path) -> None:
    unchanged = _file(tmp_path, message(june(3, 7, 0)))
    ok = _cli(runner, "send", str(unchanged), "--dry-run", "--key", "d1")
    assert ok.exit_code == 0 and "d1: OK, dry run (simulated, nothing paid)" in ok.stdout
    failed = _cli(runner, "send", str(_file(tmp_path, message(june(3, 7)))), "--dry-run")
    assert failed.exit_code == 1  # the simulation service is down: FEILET, still marked
    assert "FEILET, dry run (simulated, nothing paid)" in failed.stdout
    said = " ".join(failed.stdout.split())  # where it called and what to do next
    assert "oppdrag could not be reached" in said
    assert "at TETHER_PAYMENTS_OPPDRAG_URL=http://127.0.0.1:9: start the payment" in said
    assert "`tether simulate oppdrag`), then dry-run again under a new key" in said
    real = _cli(runner, "send", str(_file(tmp_path, message(june(3, 7)))), "--key", "r1")
    assert "dry run" not in real.stdout


def test_a_refused_credential_names_its_setting_and_the_demo_settings(
    runner: CliRunner, tmp_path: Path, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CLI without the demo's settings sends the default token to the demo's simulator: the
    FEILET ended "HTTP 401: ... bearer <HIDDEN>" with no next step."""
    sim = start_simulator(nats_url, topology=unique_topology(), token="the-demos-random-token-4711")
    try:
        monkeypatch.setenv("TETHER_PAYMENTS_OPPDRAG_URL", sim.url)
        file = _file(tmp_path, message(june(3, 7)))
        result = _cli(runner, "send", str(file), "--dry-run", "--wait")
    finally:
        sim.stop()
    said = " ".join(result.stdout.split())
    assert result.exit_code == 1 and "FEILET, dry run" in said, said
    assert "HTTP 401" in said and "missing or wrong bearer token" in said
    assert "TETHER_PAYMENTS_OPPDRAG_TOKEN carries the credential" in said
    assert f"TETHER_PAYMENTS_OPPDRAG_URL={sim.url}" in said
    assert "`set -a; . <TETHER_DATA_DIR>/demo.env; set +a`, the line the demo prints" in said


def test_a_bare_ok_says_nothing_changed(runner: CliRunner, tmp_path: Path) -> None:
    result = _cli(runner, "send", str(_file(tmp_path, message(june(3, 7, 0)))), "--key", "z")
    assert result.exit_code == 0 and "z: OK" in result.stdout
    assert "nothing changed, no order sent" in result.stdout


def test_a_duplicate_says_so_and_that_a_retry_needs_a_new_key(
    runner: CliRunner, tmp_path: Path
) -> None:
    file = _file(tmp_path, message(june(3, 7)))
    first = _cli(runner, "send", str(file), "--key", "k1")
    assert "duplicate" not in first.output
    again = _cli(runner, "send", str(file), "--key", "k1")
    said = " ".join(again.stdout.split())
    assert "k1: MOTTATT" in said and "duplicate" in said and "new --key" in said
    as_json = _cli(runner, "send", str(file), "--key", "k1", "--json")
    assert "duplicate" in as_json.stderr and "duplicate" not in as_json.stdout


# --- 7. a case at 80 columns --------------------------------------------------------------------


def test_a_case_shows_whole_periods_and_amounts_at_80_columns(
    runner: CliRunner, db_url: str
) -> None:
    days = june(3, 4) + june(5, 7, 2000) + june(10, 14, 250, periode="m2")
    days += [day(date(2024, 6, 14), 480, periode="m2", type_="DagpengerFerietillegg")]
    _answer(db_url, "k1", message(days), "00")
    result = _cli(runner, "case", "sak1")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    periods = (
        "03..2024-06-04 100",
        "05..2024-06-07 2000",
        "10..2024-06-14 250",
        "14..2024-06-14 480",
    )
    for period in periods:
        assert any(period in line for line in lines), result.stdout


def test_a_04_is_printed_as_a_warning_under_ok_not_as_an_error(
    runner: CliRunner, db_url: str
) -> None:
    """A 04 is paid: its text used to be printed in red as "error 200"."""
    _answer(db_url, "warned", message(june(3, 7)), "04")
    result = _cli(runner, "status", "warned")
    assert result.exit_code == 0 and "warned: OK" in result.stdout
    assert "  warning: " in result.stdout and "error 200" not in result.stdout
