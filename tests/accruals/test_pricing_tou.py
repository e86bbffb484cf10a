"""Time-of-use pricing: every band of the tariff priced, bands by the state's local clock."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from tether.accruals import pricing, tariffs
from tether.accruals.tariffs import SLOTS


def _book(*bands: tuple[str, str, int, int, str]) -> tariffs.TariffBook:
    """Tariff T from 2026-01-01: supply 0 and the given (band, days, start, end, cents) rows."""
    base = {"tariff_id": "T", "effective_from": date(2026, 1, 1), "block_kwh_per_day": None}
    rows: list[dict[str, Any]] = [
        {**base, "component": "supply", "band": "all", "rate_cents": Decimal(0)}
    ]
    for band, days, lo, hi, cents in bands:
        rows.append(
            {
                **base,
                "component": "tou",
                "band": band,
                "days": days,
                "start_slot": lo,
                "end_slot": hi,
                "rate_cents": Decimal(cents),
            }
        )
    return tariffs.build(rows)


WD_WE = (("wd", "weekday", 0, 48, "10"), ("we", "weekend", 0, 48, "50"))


def _tou(lines: list[pricing.Line]) -> dict[str, int]:
    return {x.code: x.qty_wh for x in lines if x.code.startswith("TOU_")}


def _price(book: tariffs.TariffBook, jur: str, d0: date, kwh: np.ndarray) -> dict[str, int]:
    lines, problems = pricing.price(book, ["T"], [jur], d0, np.array([0]), kwh)
    assert problems == {}
    return _tou(lines)


def test_a_band_unused_in_the_window_is_a_zero_line() -> None:
    kwh = np.zeros((3, 1, 1, SLOTS))
    kwh[0, 0, 0, 20] = 1.0  # Friday 2026-01-02: the weekend band does not occur
    assert _price(_book(*WD_WE), "NSW", date(2026, 1, 2), kwh) == {"TOU_WD": 1000, "TOU_WE": 0}


@pytest.mark.parametrize(
    ("jur", "d0", "slot", "band"),
    [
        # Friday 23:00 AEST is Saturday 00:00 AEDT in Sydney: weekend
        ("NSW", date(2026, 1, 2), 46, "TOU_WE"),
        ("NSW", date(2026, 1, 2), 45, "TOU_WD"),
        # Brisbane keeps AEST: Friday 23:00 stays Friday
        ("QLD", date(2026, 1, 2), 46, "TOU_WD"),
        # Monday 00:00 AEST is Sunday 23:30 ACST in Adelaide (winter): weekend
        ("SA", date(2026, 6, 7), 48, "TOU_WE"),
        ("SA", date(2026, 6, 7), 49, "TOU_WD"),
    ],
)
def test_weekday_or_weekend_is_the_local_date(jur: str, d0: date, slot: int, band: str) -> None:
    kwh = np.zeros((3, 1, 2, SLOTS))
    kwh[0, 0, slot // SLOTS, slot % SLOTS] = 1.0
    got = _price(_book(*WD_WE), jur, d0, kwh)
    assert got[band] == 1000 and sum(got.values()) == 1000


def test_offsets_change_at_the_dst_instant_not_per_day() -> None:
    # AEDT ends 2026-04-05 03:00 local = 02:00 AEST: slots 0-3 of that day are still +1 h
    got = pricing.local_offsets("NSW", date(2026, 4, 4), 3)
    assert got.shape == (3, SLOTS)
    assert (got[0] == 2).all() and (got[2] == 0).all()
    assert got[1, :4].tolist() == [2, 2, 2, 2] and (got[1, 4:] == 0).all()
    # AEDT starts 2026-10-04 02:00 AEST; ACDT at 02:00 ACST local = 02:30 AEST
    assert pricing.local_offsets("NSW", date(2026, 10, 4), 1)[0, 3:5].tolist() == [0, 2]
    assert pricing.local_offsets("SA", date(2026, 10, 4), 1)[0, 3:6].tolist() == [-1, -1, 1]
    assert (pricing.local_offsets("QLD", date(2026, 4, 4), 3) == 0).all()


def test_a_dst_end_morning_prices_by_the_summer_clock() -> None:
    # 2026-04-05 01:00 AEST market is 02:00 AEDT local: the 'late' band (from 02:00 local)
    book = _book(("early", "all", 0, 4, "10"), ("late", "all", 4, 48, "50"))
    kwh = np.zeros((3, 1, 1, SLOTS))
    kwh[0, 0, 0, 2] = 1.0
    assert _price(book, "NSW", date(2026, 4, 5), kwh) == {"TOU_EARLY": 0, "TOU_LATE": 1000}
