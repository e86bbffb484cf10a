"""Channel-days from PostgreSQL straight into numpy: binary COPY of fixed-size rows.

Rows of one interval length have the same byte size (three int4 keys, a float8[] of N values
without NULLs, N quality letters), so a whole result is one ``np.frombuffer`` with a structured
dtype instead of one Python object per value.
"""

from __future__ import annotations

from typing import Any, LiteralString

import numpy as np
import numpy.typing as npt
import psycopg

_HEADER = 19  # PGCOPY signature (11) + flags (4) + extension length (4)


def _dtype(n: int) -> np.dtype[Any]:
    return np.dtype(
        [
            ("nf", ">i2"),
            ("l1", ">i4"),
            ("a", ">i4"),
            ("l2", ">i4"),
            ("d", ">i4"),
            ("l3", ">i4"),
            ("k", ">i4"),
            ("l4", ">i4"),
            ("ahdr", ">i4", (5,)),
            ("vals", [("len", ">i4"), ("v", ">f8")], (n,)),
            ("l5", ">i4"),
            ("q", f"S{n}"),
        ]
    )


class Days:
    """Parsed rows: account index, day index, kind code, values (rows x 48 kWh), quality."""

    def __init__(
        self,
        a: npt.NDArray[np.int64],
        d: npt.NDArray[np.int64],
        k: npt.NDArray[np.int64],
        vals: npt.NDArray[np.float64],
        q: npt.NDArray[np.uint8],
    ) -> None:
        self.a, self.d, self.k, self.vals, self.q = a, d, k, vals, q

    def __len__(self) -> int:
        return len(self.a)


def fetch(conn: psycopg.Connection[Any], query: LiteralString, params: dict[str, Any]) -> Days:
    """Run ``query`` once per interval length (it must select a, d, k, vals, quality and take
    ``%(n)s`` = values per day) and return every row as 30-minute values."""
    parts: list[Days] = []
    for n in (48, 96, 288):
        with conn.cursor() as cur:
            buf = bytearray()
            sql = f"COPY ({query}) TO STDOUT (FORMAT binary)"
            with cur.copy(sql, {**params, "n": n}) as copy:
                for block in copy:
                    buf += block
        parts.append(_parse(bytes(buf), n))
    return Days(
        np.concatenate([p.a for p in parts]),
        np.concatenate([p.d for p in parts]),
        np.concatenate([p.k for p in parts]),
        np.concatenate([p.vals for p in parts]),
        np.concatenate([p.q for p in parts]),
    )


def _parse(buf: bytes, n: int) -> Days:
    body = buf[_HEADER:-2]
    dt = _dtype(n)
    if len(body) % dt.itemsize:
        raise ValueError("channel-day rows are not of one size (NULL values or keys?)")
    rows = np.frombuffer(body, dt)
    if (rows["vals"]["len"] != 8).any():
        raise ValueError("a channel-day has NULL values")
    vals = rows["vals"]["v"].astype(np.float64)
    q = np.frombuffer(rows["q"].tobytes(), np.uint8).reshape(len(rows), n)
    if n != 48:  # sum to half-hours; a half-hour is as good as its worst quality letter
        step = n // 48
        vals = vals.reshape(len(rows), 48, step).sum(axis=2)
        q = q.reshape(len(rows), 48, step).max(axis=2)
    return Days(
        rows["a"].astype(np.int64),
        rows["d"].astype(np.int64),
        rows["k"].astype(np.int64),
        vals,
        q.astype(np.uint8),
    )
