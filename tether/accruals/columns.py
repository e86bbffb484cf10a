"""Channel-days from PostgreSQL straight into numpy: binary COPY of fixed-size rows.

Rows of one interval length have the same byte size (three int4 keys, a float8[] of N values
without NULLs, N quality letters): one pass over the row lengths finds each row, then the rows of
each length are one ``np.frombuffer`` with a structured dtype (no Python object per value).
"""

from __future__ import annotations

import struct
from typing import Any, LiteralString

import numpy as np
import numpy.typing as npt
import psycopg

_HEADER = 19  # PGCOPY signature (11) + flags (4) + extension length (4)
# from a row's start: field count and three int4 fields (26 bytes), the array's byte length,
# its ndim, flags and element type (12 bytes), its first dimension = values per day
_LENGTHS = struct.Struct(">26xi12xi")


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
    """Run ``query`` (selecting a, d, k, values, qualities of any interval length) in one binary
    COPY and return every row as 30-minute values."""
    buf = bytearray()
    with conn.cursor() as cur, cur.copy(f"COPY ({query}) TO STDOUT (FORMAT binary)", params) as cp:
        for block in cp:
            buf += block
    data = bytes(buf)
    starts: dict[int, list[int]] = {1: [], 48: [], 96: [], 288: []}
    pos, end = _HEADER, len(data) - 2
    lengths = _LENGTHS.unpack_from
    while pos < end:  # one step per row: read two lengths, never the values
        alen, n = lengths(data, pos)
        if n not in starts or alen != 20 + 12 * n:
            raise ValueError("a channel-day has NULL values or an unexpected length")
        starts[n].append(pos)
        pos += 30 + alen + 4 + n
    raw = np.frombuffer(data, np.uint8)
    parts = []
    for n, found in starts.items():
        size = _dtype(n).itemsize
        rows = raw[np.asarray(found, np.int64)[:, None] + np.arange(size)] if found else raw[:0]
        parts.append(_parse(rows.tobytes(), n))
    return Days(
        np.concatenate([p.a for p in parts]),
        np.concatenate([p.d for p in parts]),
        np.concatenate([p.k for p in parts]),
        np.concatenate([p.vals for p in parts]),
        np.concatenate([p.q for p in parts]),
    )


def _parse(body: bytes, n: int) -> Days:
    dt = _dtype(n)
    rows = np.frombuffer(body, dt)
    if len(rows) and (rows["vals"]["len"] != 8).any():
        raise ValueError("a channel-day has NULL values")
    vals = rows["vals"]["v"].astype(np.float64).reshape(len(rows), n)
    q = np.frombuffer(rows["q"].tobytes(), np.uint8).reshape(len(rows), n)
    if n == 1:  # a day total of a one-quality day: spread evenly (only day sums are priced)
        vals = np.repeat(vals / 48, 48, axis=1)
        q = np.repeat(q, 48, axis=1)
    elif n != 48:  # sum to half-hours; a half-hour is as good as its worst quality letter
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
