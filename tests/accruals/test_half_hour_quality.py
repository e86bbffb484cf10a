"""A half-hour built from 15- or 5-minute intervals takes the quality of its worst interval, by
what the letters mean (actual A, F; estimates E, S; null N), not by their byte order, which made
an estimated plus a final-substitute quarter an actual half-hour (the estimated share too low)
and a null plus a substitute quarter a substitute (never re-estimated)."""

from __future__ import annotations

import numpy as np
import pytest

from tether.accruals.columns import _half_hours


@pytest.mark.parametrize(
    ("quarters", "half_hour"),
    [("AA", "A"), ("AF", "F"), ("EF", "E"), ("FE", "E"), ("SA", "S"), ("NS", "N"), ("AN", "N")],
)
def test_a_half_hour_is_as_good_as_its_worst_quarter(quarters: str, half_hour: str) -> None:
    q = np.frombuffer((quarters * 48).encode(), np.uint8).reshape(1, 96)
    vals = np.arange(96, dtype=np.float64).reshape(1, 96)
    days = _half_hours(1, 2, np.array([0]), vals, q)
    assert bytes(days.q[0]).decode() == half_hour * 48
    assert days.vals[0, 0] == 0 + 1 and days.vals[0, 47] == 94 + 95  # energy summed


def test_five_minute_intervals_too() -> None:
    q = np.frombuffer((("A" * 5 + "E") * 48).encode(), np.uint8).reshape(1, 288)
    days = _half_hours(1, 2, np.array([0]), np.ones((1, 288)), q)
    assert bytes(days.q[0]).decode() == "E" * 48 and days.vals[0].tolist() == [6.0] * 48
