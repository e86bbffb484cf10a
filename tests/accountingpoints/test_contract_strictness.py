"""The adapter client holds answers to the contract's types: a ``format: date-time`` is an RFC
3339 string (not an epoch number, a numeric string or a space for the ``T``), and an id matches
its whole pattern (a regex ``$`` also matched before a trailing newline, so ``"123456789\\n"``
became a new end user)."""

from __future__ import annotations

import copy
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tether.accountingpoints.client import parse_accounting_point
from tether.accountingpoints.domain import is_valid_gsrn, make_gsrn
from tether.accountingpoints.errors import InvalidAccountingPointData
from tether.accountingpoints.simulator import Datahub
from tether.core.wire import parse_rfc3339

OSLO = ZoneInfo("Europe/Oslo")


@pytest.fixture(scope="module")
def answer() -> tuple[str, dict[str, Any]]:
    hub = Datahub.generate(20, seed=7)
    for gsrn in hub.gsrns:
        record = hub.record(gsrn)
        if record and record.get("end_user") and record.get("metering_grid_area"):
            parse_accounting_point(record, gsrn=gsrn, tz=OSLO)  # as generated: valid
            return gsrn, record
    raise AssertionError("no accounting point with an end user and a grid area")


SAME_INSTANT = {  # the period's own valid_from, written another way: only the form is wrong
    "epoch number": lambda text: int(parse_rfc3339(text).timestamp()),
    "epoch string": lambda text: str(int(parse_rfc3339(text).timestamp())),
    "space for T": lambda text: text.replace("T", " "),
}


@pytest.mark.parametrize("form", SAME_INSTANT)
def test_a_moment_not_written_as_rfc_3339_is_refused(
    answer: tuple[str, dict[str, Any]], form: str
) -> None:
    gsrn, record = answer
    broken = copy.deepcopy(record)
    period = broken["end_user"][0]
    period["valid_from"] = SAME_INSTANT[form](period["valid_from"])
    with pytest.raises(InvalidAccountingPointData, match="RFC 3339"):
        parse_accounting_point(broken, gsrn=gsrn, tz=OSLO)


@pytest.mark.parametrize(("timeline", "suffix"), [("end_user", "\n"), ("metering_grid_area", "\n")])
def test_an_id_with_a_trailing_newline_is_refused(
    answer: tuple[str, dict[str, Any]], timeline: str, suffix: str
) -> None:
    gsrn, record = answer
    broken = copy.deepcopy(record)
    broken[timeline][0]["business_id"] += suffix
    with pytest.raises(InvalidAccountingPointData):
        parse_accounting_point(broken, gsrn=gsrn, tz=OSLO)


def test_ids_and_moments_are_whole_matches() -> None:
    gsrn = make_gsrn("70705750", 1)
    assert is_valid_gsrn(gsrn) and not is_valid_gsrn(gsrn + "\n")
    assert parse_rfc3339("2024-01-01T00:00:00+01:00").utcoffset() is not None
    for bad in ("2024-01-01 00:00:00+01:00", "2024-01-01T00:00:00", "2024-01-01T00:00:00Z\n"):
        with pytest.raises(ValueError):
            parse_rfc3339(bad)
