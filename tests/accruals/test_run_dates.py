"""Which runs are refused for their dates, the schedule's time, and a run date with no data
(real PostgreSQL; the small world of run_fixtures)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from typer.testing import CliRunner

from tests.accruals.run_fixtures import PERIOD_END, RUN_SETTINGS, load_world, nem12, nem13
from tether.accruals import flow, plan, run, service
from tether.accruals.cli import app
from tether.accruals.settings import AccrualsSettings

SETTINGS = RUN_SETTINGS
NOW = datetime(2026, 12, 5, 21, 53, tzinfo=UTC)  # 2026-12-06 07:53 AEST


@pytest.fixture
async def world(db_url: str, tmp_path: Path) -> str:
    return await load_world(db_url, tmp_path, {"nem12": nem12(), "nem13": nem13()})


def refusal(period_end: date, as_at: datetime | None, origin: str = "given") -> str:
    stamp = as_at or run.default_as_at(period_end, SETTINGS)
    with pytest.raises(plan.RunRefused) as caught:
        plan.check(period_end, stamp, origin, SETTINGS, NOW)
    return str(caught.value)


def test_a_period_not_over_and_as_ats_before_it_or_in_the_future_are_refused() -> None:
    assert "period end 2027-06-30 is not over yet" in refusal(date(2027, 6, 30), None)
    assert "period end 2026-12-06 is not over yet" in refusal(date(2026, 12, 6), None)  # today
    early = datetime.fromisoformat("2026-10-01T00:00:00+10:00")
    assert "before the end of period end 2026-10-31" in refusal(date(2026, 10, 31), early)
    during = datetime.fromisoformat("2026-10-31T23:59:00+10:00")  # the day is not over
    assert "before the end of period end 2026-10-31" in refusal(date(2026, 10, 31), during)
    later = NOW + timedelta(minutes=1)
    assert f"as-at {later.isoformat()} is in the future" in refusal(date(2026, 10, 31), later)
    # the default as-at of a month that ended days ago has not come yet: say so, and what to do
    message = refusal(date(2026, 11, 30), None, "default")
    assert "the default as-at 2026-12-07T00:00:00+10:00" in message and "--as-at" in message
    # what is allowed: a past period end, as at a time between its end and now
    for as_at in (datetime.fromisoformat("2026-12-01T00:00:00+10:00"), NOW):
        plan.check(date(2026, 11, 30), as_at, "given", SETTINGS, NOW)


def test_submit_refuses_them_before_anything_is_queued(db_url: str) -> None:
    future = datetime.now(UTC) + timedelta(hours=1)
    for period_end, as_at in (
        (date.today() + timedelta(days=200), None),
        (PERIOD_END, datetime.fromisoformat("2026-03-01T00:00:00+10:00")),
        (PERIOD_END, future),
    ):
        with pytest.raises(plan.RunRefused):
            flow.submit(db_url, SETTINGS, period_end, as_at)
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM acc.run").fetchone() == (0,)


async def test_the_api_answers_422_with_the_reason(http: httpx.AsyncClient) -> None:
    future = (date.today() + timedelta(days=200)).isoformat()
    answer = await http.post("/api/v1/accruals/runs", json={"period_end": future})
    assert answer.status_code == 422 and "is not over yet" in answer.text, answer.text
    answer = await http.post(
        "/api/v1/accruals/runs",
        json={"period_end": "2026-03-31", "as_at": "2026-03-01T00:00:00+10:00"},
    )
    assert answer.status_code == 422 and "before the end of period end" in answer.text


def test_the_cli_gives_a_usage_error_with_exit_2(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    for argv, words in (
        (["--period-end", "2026-10-31", "--as-at", "yesterday"], "'yesterday' is not an ISO"),
        (["--period-end", "2026-10-31", "--as-at", "2026-11-05T00:00:00"], "needs an offset"),
        (["--period-end", "2999-06-30"], "is not over yet"),
        (["--period-end", "2026-10-31", "--as-at", "2026-10-01T00:00:00+10:00"], "before the end"),
    ):
        result = CliRunner().invoke(app, ["run", *argv])
        assert result.exit_code == 2, (argv, result.output)
        assert words in " ".join(result.output.split()), result.output
        assert "Traceback" not in result.output


def test_the_default_schedule_fires_after_the_default_as_at() -> None:
    """The schedule runs the previous month as at its default as-at (period end + lag, 00:00
    AEST), which must have passed: else the run would be refused as at a future time."""
    settings = AccrualsSettings()  # type: ignore[call-arg]
    minute, hour, day, month, weekday = settings.schedule.split()
    assert (month, weekday) == ("*", "*")
    for m in range(1, 13):
        fired = datetime(2027, m, int(day), int(hour), int(minute), tzinfo=UTC)
        period_end = fired.date().replace(day=1) - timedelta(days=1)
        assert fired > run.default_as_at(period_end, settings), m


def test_accounts_with_no_data_up_to_the_period_end_are_left_out(world: str) -> None:
    """On 31 January only A3 has anything (data from 1 January, an invoice issued 5 January);
    the others' data and invoices come later: nothing to accrue, no row, counted and told."""
    period_end = date(2026, 1, 31)
    totals = run.run_inline(world, period_end, run.default_as_at(period_end, SETTINGS), SETTINGS)
    assert totals["accounts"] == 1
    detail = service.run_detail(world, period_end)
    assert detail is not None
    prepare = next(s for s in detail["steps"] if s["step"] == "prepare")
    assert (prepare["detail"]["accounts"], prepare["detail"]["no_data"]) == (1, 5)
    assert service.warnings(detail) == [
        "5 account(s) have neither an invoice nor meter data up to 2026-01-31 as at"
        f" {detail['as_at']}: nothing to accrue, left out of the run"
    ]
    # no data at all (a date before everything): no row, and a warning that says so
    early = date(2020, 1, 31)
    totals = run.run_inline(world, early, run.default_as_at(early, SETTINGS), SETTINGS)
    assert totals["accounts"] == 0
    empty = service.run_detail(world, early)
    assert empty is not None and "nothing to accrue for 2020-01-31" in service.warnings(empty)[1]
