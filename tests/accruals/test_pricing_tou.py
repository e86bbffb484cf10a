"""Time-of-use pricing: every band of the tariff priced, even one unused in the window."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import numpy as np

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
