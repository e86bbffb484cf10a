"""A thin profile cell (month, day type) falls back to its parent's cell (real PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import psycopg

from tether.accruals.estimate import Profiles
from tether.accruals.sql import Q

PERIOD_END = date(2026, 3, 31)
# (level, area, month, weekend, contributors, value of every half-hour)
CELLS = [
    ("distributor", "Ausgrid", 2, False, 5, 1.0),
    ("distributor", "Ausgrid", 2, True, 1, 2.0),
    ("distributor", "Ausgrid", 3, False, 5, 1.0),
    ("distributor", "Ausgrid", 3, True, 1, 2.0),
    ("jurisdiction", "NSW", 2, False, 9, 3.0),
    ("jurisdiction", "NSW", 2, True, 2, 4.0),
    ("jurisdiction", "NSW", 3, False, 9, 3.0),
    ("jurisdiction", "NSW", 3, True, 6, 4.0),
    ("national", "AU", 2, False, 20, 5.0),
    ("national", "AU", 2, True, 15, 6.0),
    ("national", "AU", 3, False, 20, 5.0),
    ("national", "AU", 3, True, 15, 6.0),
]


def test_each_thin_cell_uses_the_first_parent_with_enough_contributors(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute(
            Q["run_begin"],
            {
                "period_end": PERIOD_END,
                "as_at": datetime(2026, 4, 1, tzinfo=UTC),
                "attempt": 1,
                "workflow_id": "w",
                "settings": None,
            },
        )
        with conn.cursor() as cur, cur.copy(Q["copy_profiles"]) as copy:
            for level, area, month, weekend, contributors, value in CELLS:
                row = (PERIOD_END, level, area, "residential", "general", month, weekend)
                copy.write_row((*row, contributors, value * 48, [value] * 48))
        profiles = Profiles(conn, PERIOD_END, 3)
    name, shapes = profiles.resolve("Ausgrid", "NSW", "residential", 0)
    assert name == "distributor:Ausgrid:residential"
    assert shapes is not None
    got = shapes[:, :, 0]  # month, weekend
    assert got[1].tolist() == [1.0, 6.0]  # February: weekend thin here and in NSW -> national
    assert got[2].tolist() == [1.0, 4.0]  # March: weekend thin here -> NSW
    assert got[5].tolist() == [1.0, 4.0]  # outside the window: the mean of the usable months
    assert (shapes == shapes[:, :, :1]).all()
