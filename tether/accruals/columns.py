"""Channel-days from PostgreSQL straight into numpy: one binary COPY row per account, channel
(or channel kind) and day width, its days aggregated into a 2-D float8 array.

A chunk is a few thousand rows instead of one per channel-day, and each row's days x values
become one ``np.frombuffer`` view: no Python object per value, no per-day message.
"""

from __future__ import annotations

import struct
from typing import Any, LiteralString

import numpy as np
import numpy.typing as npt
import psycopg

_HEADER = 19  # PGCOPY signature (11) + flags (4) + extension length (4)
_I32 = struct.Struct(">i")
_INT4S = np.dtype([("len", ">i4"), ("v", ">i4")])
_FLOAT8S = np.dtype([("len", ">i4"), ("v", ">f8")])


class Days:
    """Rows: account index, day index, kind code, values (rows x 48 kWh), quality letters; and,
    where the query sends the channel's suffix, its code ``c`` into ``suffixes`` (sorted, so
    codes order as the suffixes do; -1 without one)."""

    def __init__(
        self,
        a: npt.NDArray[np.int64],
        d: npt.NDArray[np.int64],
        k: npt.NDArray[np.int64],
        vals: npt.NDArray[np.float64],
        q: npt.NDArray[np.uint8],
        c: npt.NDArray[np.int64] | None = None,
        suffixes: list[str] | None = None,
    ) -> None:
        self.a, self.d, self.k, self.vals, self.q = a, d, k, vals, q
        self.c = np.full(len(a), -1, np.int64) if c is None else c
        self.suffixes = suffixes or []

    def __len__(self) -> int:
        return len(self.a)


def fetch(conn: psycopg.Connection[Any], query: LiteralString, params: dict[str, Any]) -> Days:
    """Run ``query`` in one binary COPY. It must select, per group of channel-days of one
    account, kind and day width: a int4, k int4, days int4[], values float8[][] (days x width;
    width 1 = the day's total), qualities text (the days' letters concatenated), and may add
    the group's channel suffix text (then a group is one channel's days)."""
    buf = bytearray()
    conn.execute("SET LOCAL work_mem = '256MB'")  # the groups' sorts stay in memory
    with conn.cursor() as cur, cur.copy(f"COPY ({query}) TO STDOUT (FORMAT binary)", params) as cp:
        for block in cp:
            buf += block
    data = bytes(buf)
    i32 = _I32.unpack_from
    parts: list[Days] = []
    names: list[str | None] = []
    pos, end = _HEADER, len(data) - 2
    while pos < end:
        fields = int.from_bytes(data[pos : pos + 2], "big")
        a, k = i32(data, pos + 6)[0], i32(data, pos + 14)[0]
        pos += 18
        dlen = i32(data, pos)[0]
        day_rows = np.frombuffer(data, _INT4S, i32(data, pos + 16)[0], pos + 24)
        days = day_rows["v"]
        pos += 4 + dlen
        vlen = i32(data, pos)[0]
        if i32(data, pos + 8)[0]:
            raise ValueError("a channel-day has NULL values")
        rows, width = i32(data, pos + 16)[0], i32(data, pos + 24)[0]
        cells = np.frombuffer(data, _FLOAT8S, rows * width, pos + 32)
        if (day_rows["len"] != 4).any() or (cells["len"] != 8).any() or rows != len(days):
            raise ValueError("unexpected channel-day layout in the COPY stream")
        vals = cells["v"].reshape(rows, width)
        pos += 4 + vlen
        qlen = i32(data, pos)[0]
        q = np.frombuffer(data, np.uint8, qlen, pos + 4).reshape(rows, width)
        pos += 4 + qlen
        name = None
        if fields == 6:
            slen = i32(data, pos)[0]
            name = data[pos + 4 : pos + 4 + slen].decode()
            pos += 4 + slen
        parts.append(_half_hours(a, k, days, vals, q))
        names.append(name)
    if not parts:
        return Days(*(np.zeros(0, np.int64),) * 3, np.zeros((0, 48)), np.zeros((0, 48), np.uint8))
    suffixes = sorted({x for x in names if x is not None})
    code = {x: i for i, x in enumerate(suffixes)}
    codes = np.array([-1 if x is None else code[x] for x in names], np.int64)
    return Days(
        np.concatenate([p.a for p in parts]),
        np.concatenate([p.d for p in parts]),
        np.concatenate([p.k for p in parts]),
        np.concatenate([p.vals for p in parts]),
        np.concatenate([p.q for p in parts]),
        np.repeat(codes, [len(p) for p in parts]),
        suffixes,
    )


# How bad a quality letter is, for a half-hour made of shorter intervals: actual (A, then F),
# then the distributor's estimates (E, S), then null (N, re-estimated); an unknown letter worst.
# Not the letters' byte order, which made E + F an actual F and N + S a substitute S.
_RANK = np.full(256, 3, np.uint8)
for _letter, _rank in (("A", 0), ("F", 1), ("E", 2), ("S", 2), ("N", 3)):
    _RANK[ord(_letter)] = _rank


def _half_hours(
    a: int, k: int, days: npt.NDArray[Any], vals: npt.NDArray[Any], q: npt.NDArray[np.uint8]
) -> Days:
    rows, width = vals.shape
    v = vals.astype(np.float64)
    if width == 1:  # a one-quality day sent as its total: spread evenly (only sums are priced)
        v, q = np.repeat(v / 48, 48, axis=1), np.repeat(q, 48, axis=1)
    elif width != 48:  # sum to half-hours; a half-hour is as good as its worst quality
        step = width // 48
        v = v.reshape(rows, 48, step).sum(axis=2)
        parts = q.reshape(rows, 48, step)
        worst = _RANK[parts].argmax(axis=2)
        q = np.take_along_axis(parts, worst[..., None], axis=2)[..., 0]
    n = np.full(rows, a, np.int64)
    return Days(n, days.astype(np.int64), np.full(rows, k, np.int64), v, q.astype(np.uint8))
