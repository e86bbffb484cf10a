"""What ``tether accruals run/runs/ingest`` say to a user: a queued run is "queued" (not "no
run"), who runs it and how to follow it; bad dates and paths are usage errors (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.accruals.run_fixtures import PERIOD_END
from tether.accruals.cli import app


@pytest.fixture
def runner(db_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("COLUMNS", "300")  # a usage error's box holds the reason on one line
    return CliRunner()


def test_a_queued_run_is_said_queued_until_a_worker_takes_it(runner: CliRunner) -> None:
    empty = runner.invoke(app, ["runs"])
    assert empty.exit_code == 0 and empty.stdout == ""
    assert "no runs yet: start one with `tether accruals run" in empty.stderr
    assert json.loads(runner.invoke(app, ["runs", "--json"]).stdout) == []

    day = PERIOD_END.isoformat()
    queued = runner.invoke(app, ["run", "--period-end", day, "--no-wait"])
    assert queued.exit_code == 0, queued.output
    assert queued.stdout == f"workflow accruals-run-{day}\n"  # what a script reads, unchanged
    assert " ".join(queued.stderr.split()) == (
        "queued: a running `tether worker` runs it (this command does not wait); follow it "
        f"with `tether accruals runs --period-end {day}`"
    )
    shown = runner.invoke(app, ["runs", "--period-end", day])
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.startswith(f"{day}  queued   workflow accruals-run-{day}: not started")
    as_json = json.loads(runner.invoke(app, ["runs", "--period-end", day, "--json"]).stdout)
    assert as_json == {"period_end": day, "status": "queued", "workflow_id": f"accruals-run-{day}"}

    never = runner.invoke(app, ["runs", "--period-end", "2026-01-31"])
    assert never.exit_code == 1 and "no run for 2026-01-31" in never.stderr


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["run", "--period-end", "2024-02-30"], "'2024-02-30' is not a calendar date (2024-02"),
        (["runs", "--period-end", "2024-13-01"], "'2024-13-01' is not a date YYYY-MM-DD"),
        (["run", "--period-end", "2024-01-31", "--no-wait", "--out", "x"], "--out writes the"),
        (["ingest", "nofile.csv"], "'nofile.csv' does not exist"),
    ],
)
def test_bad_usage_exits_2_naming_the_option(
    runner: CliRunner, args: list[str], said: str, tmp_path: Path
) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert said in " ".join(result.stderr.replace("│", " ").split())
