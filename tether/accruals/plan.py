"""What a submit fixes for a run before it is queued: its attempt, as-at and estimation settings,
and the checks of its dates. One place, so the CLI, the API and the schedule (all through
``flow.submit``) refuse the same runs with the same words.

A run accrues a period that is over, as at a time that has passed: a period end not over yet
gives meaningless figures (and would become the "latest run"), an as-at before the end of the
period end misses the period's own data, and an as-at in the future lets a re-run see data the
run did not. A re-run reuses the as-at and settings stored with the run date, so it gives the
same bytes whichever process runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from tether.accruals.run import AEST, default_as_at
from tether.accruals.settings import RUN_FIELDS, AccrualsSettings
from tether.accruals.sql import Q
from tether.core.errors import InvalidInput


class RunRefused(InvalidInput):
    """The run's dates cannot give meaningful, repeatable figures (422; CLI exit 2)."""


@dataclass(frozen=True, kw_only=True)
class Latest:
    """The run date's latest attempt, as stored in acc.run."""

    as_at: datetime
    attempt: int
    workflow_id: str
    status: str
    settings: dict[str, Any] | None


@dataclass(frozen=True, kw_only=True)
class Plan:
    attempt: int  # to start (the one marked running when ``running`` is set)
    running: str | None  # workflow id of an attempt still marked running
    as_at: datetime
    settings: dict[str, Any]  # RUN_FIELDS' values every executor prices with


def latest(url: str, period_end: date) -> Latest | None:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        row = conn.execute(Q["run_get"], {"period_end": period_end}).fetchone()
    if row is None:
        return None
    names = ("as_at", "attempt", "workflow_id", "status", "settings")
    return Latest(**{name: row[name] for name in names})


def next_attempt(found: Latest | None) -> tuple[int, str | None]:
    """(attempt to start, workflow id of an attempt still marked running or None)."""
    if found is None:
        return 1, None
    if found.status == "running":
        return found.attempt, found.workflow_id
    return found.attempt + 1, None


def plan(
    url: str,
    settings: AccrualsSettings,
    period_end: date,
    as_at: datetime | None,
    *,
    new_settings: bool = False,
    now: datetime | None = None,
) -> Plan:
    """The attempt, as-at and settings of a submit; :class:`RunRefused` if its dates are wrong.

    As-at: ``as_at``, else the one stored with the run date, else the default (period end +
    as_at_lag_days). Settings: those stored with the run date (``new_settings``: ``settings``'
    own, e.g. after an operator changed them on purpose), else ``settings``' own."""
    found = latest(url, period_end)
    if as_at is not None:
        stamp, origin = as_at, "given"
    elif found is not None:
        stamp, origin = found.as_at, "stored"
    else:
        stamp, origin = default_as_at(period_end, settings), "default"
    check(period_end, stamp, origin, settings, now or datetime.now(UTC))
    fixed = settings.run_settings()
    if found is not None and found.settings and not new_settings:
        fixed.update({k: v for k, v in found.settings.items() if k in RUN_FIELDS})
    attempt, running = next_attempt(found)
    return Plan(attempt=attempt, running=running, as_at=stamp, settings=fixed)


def check(
    period_end: date, as_at: datetime, origin: str, settings: AccrualsSettings, now: datetime
) -> None:
    """Refuse a period end not over, an as-at before its end, and an as-at in the future."""
    over = datetime.combine(period_end + timedelta(days=1), time(), AEST)
    day = period_end.isoformat()
    if now < over:
        raise RunRefused(
            f"period end {day} is not over yet (it ends {over.isoformat()}, market time): a run"
            " accrues a period that is over, its figures would be meaningless. Give a past"
            " period end, or run this one after "
            f"{default_as_at(period_end, settings).isoformat()} (its default as-at)."
        )
    if as_at < over:
        raise RunRefused(
            f"as-at {as_at.isoformat()} is before the end of period end {day}"
            f" ({over.isoformat()}): its snapshot would miss the period's own meter data and"
            " invoices. Leave --as-at (API: as_at) out for the default (period end +"
            f" TETHER_ACCRUALS_AS_AT_LAG_DAYS), or give one at or after {over.isoformat()}."
        )
    if as_at > now:
        why = {
            "given": f"as-at {as_at.isoformat()} is in the future",
            "stored": f"the as-at stored with the run of {day}, {as_at.isoformat()}, is in the"
            " future (the run was made before future as-ats were refused)",
            "default": f"the default as-at {as_at.isoformat()} (period end +"
            f" TETHER_ACCRUALS_AS_AT_LAG_DAYS = {settings.as_at_lag_days} days, 00:00 AEST) is"
            " still in the future",
        }[origin]
        raise RunRefused(
            f"{why}: a run's snapshot must be a time that has passed, or a re-run could see"
            " data this run did not. Run it after that time, or give --as-at (API: as_at) at or"
            " before now; data dated after it will not be in the run."
        )
