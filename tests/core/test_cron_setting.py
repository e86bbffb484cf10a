"""A cron setting is checked when read, as the workflow library will read it: a schedule it
refuses (``99 * * * *``) let ``tether worker`` start and crash-loop its job on "Invalid cron
schedule". The setting type takes exactly what DBOS takes, asked of DBOS itself."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from dbos._error import DBOSException
from pydantic import TypeAdapter, ValidationError

from tether.core import workflows
from tether.core.setting_types import CronSchedule

EXAMPLES = [
    "0 2 8 * *",  # the documented defaults
    "30 3 * * *",
    "*/15 * * * *",
    "0 0 * * MON-FRI",
    "0 0 1 JAN *",
    "0 30 2 * * *",  # seconds first
    "@daily",
    "0 0 L * *",
    "99 * * * *",  # the tester's
    "bogus",
    "* * * *",
    "60 * * * *",
    "* 24 * * *",
    "0 2 8 * * 2026",
]

_check = TypeAdapter(CronSchedule)


def _setting_takes(cron: str) -> bool:
    try:
        _check.validate_python(cron)
    except ValidationError:
        return False
    return True


@workflows.workflow("test-cron-noop")
def _noop(scheduled_at: datetime, context: Any) -> None:
    """Never due in this test: each schedule is replaced by the next at once."""


@pytest.mark.timeout(120)
def test_the_setting_takes_exactly_the_schedules_dbos_takes(db_url: str) -> None:
    workflows.launch(db_url, executor_id="test-cron-parity")
    dbos_takes = {}
    try:
        for cron in EXAMPLES:
            try:
                workflows.schedule("test-cron", cron, _noop)
            except DBOSException as exc:
                assert "Invalid cron schedule" in str(exc), exc
                dbos_takes[cron] = False
            else:
                dbos_takes[cron] = True
    finally:
        workflows.shutdown()
    assert {cron: _setting_takes(cron) for cron in EXAMPLES} == dbos_takes
    assert not dbos_takes["99 * * * *"] and not dbos_takes["bogus"]
    assert dbos_takes["0 2 8 * *"] and dbos_takes["30 3 * * *"]


def test_a_bad_schedule_is_said_in_one_line_and_blank_is_none() -> None:
    with pytest.raises(ValidationError, match="not a cron schedule: give minute hour"):
        _check.validate_python("99 * * * *")
    assert _check.validate_python(" ") == ""  # no schedule, as the empty value
