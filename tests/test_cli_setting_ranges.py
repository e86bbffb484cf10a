"""Demo sizes and cron schedules are checked when read, like every other setting: one line, exit
2, before anything starts. ``TETHER_AP_DEMO_ACCOUNTING_POINTS=-3 tether demo`` recreated and
migrated the demo's database, then crashed on an IndexError; ``TETHER_ACCRUALS_SCHEDULE="99 * * *
*" tether worker`` started, then its job crash-looped on "Invalid cron schedule"."""

from __future__ import annotations

from pathlib import Path

import annotated_types
import pytest

from tests.test_cli_settings import tether
from tether.cli import settings_classes

CASES = [
    ("TETHER_AP_DEMO_ACCOUNTING_POINTS", "-3", ["demo", "--duration", "0"], "give at least 1"),
    ("TETHER_AP_DEMO_ACCOUNTING_POINTS", "0", ["demo", "--duration", "0"], "give at least 1"),
    ("TETHER_AP_DEMO_ACCOUNTING_POINTS", "100000000", ["demo"], "give at most 100000"),
    ("TETHER_AP_DEMO_CONTROLLABLE_UNITS", "0", ["demo", "--duration", "0"], "give at least 1"),
    ("TETHER_AP_DEMO_CONTROLLABLE_UNITS", "20000", ["demo"], "give at most 10000"),
    ("TETHER_ACCRUALS_SCHEDULE", "99 * * * *", ["worker", "--once"], "not a cron schedule"),
    ("TETHER_ACCRUALS_PURGE_SCHEDULE", "bogus", ["worker"], "not a cron schedule"),
]


@pytest.mark.parametrize(("name", "value", "command", "reason"), CASES, ids=lambda c: str(c))
def test_a_bad_size_or_schedule_stops_the_command_before_it_starts(
    name: str, value: str, command: list[str], reason: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    done = tether(*command, **{name: value, "TETHER_DATA_DIR": str(data)})
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith(f"error: {name}={value!r}: ") and reason in line, line
    assert done.stdout == ""
    assert not data.exists()  # no demo claimed the data dir, no server was started there


def test_every_demo_size_of_every_capability_has_a_range() -> None:
    """A size without one is the next ``-3`` that starts a demo and crashes it half-way."""
    sizes = {
        (cls.__name__, name): info
        for cls in settings_classes()
        for name, info in cls.model_fields.items()
        if name.startswith("demo_")
    }
    assert sizes  # the accounting points' two at least
    for where, info in sizes.items():
        kinds = {type(m) for m in info.metadata}
        assert {annotated_types.Ge, annotated_types.Le} <= kinds, where
