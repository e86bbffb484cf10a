"""COPY payloads for meter data: PostgreSQL's binary format for channel-days, text for reads.

A channel-day's fixed-width columns (date, interval, total, times, line, the float8[] of values,
the qualities) are laid out for a whole batch in one numpy structured array, so the 48-288
values of a row are never formatted or parsed as text; only its few text columns are encoded
per row. NULL times are sent as ``-infinity`` (fixed width) and turned back into NULL by the
merge.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from typing import Any

import numpy as np

from tether.accruals.nem_types import BasicReads, ChannelDays

BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
BINARY_TRAILER = struct.pack(">h", -1)
_FLOAT8_OID = 701
_PG_EPOCH_DAYS = 10_957  # 1970-01-01 -> 2000-01-01
_PG_EPOCH_S = _PG_EPOCH_DAYS * 86_400
_MARKET_OFFSET_S = 10 * 3600  # AEST, UTC+10, no daylight saving
_MINUS_INFINITY = np.iinfo(np.int64).min
_NULL = struct.pack(">i", -1)
#: the columns of md_stage_cd in order: fixed width first, then text
FIXED_COLUMNS = 8
TEXT_COLUMNS = 8


def _micros(stamps: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Market-time datetime64[s] -> PostgreSQL timestamptz microseconds; NaT -> -infinity."""
    seconds = stamps.astype(np.int64)
    out = (seconds - _MARKET_OFFSET_S - _PG_EPOCH_S) * 1_000_000
    return np.where(np.isnat(stamps), _MINUS_INFINITY, out)


def _fixed(b: ChannelDays) -> tuple[bytes, int]:
    """The fixed-width start of every row of ``b`` and the size of one row's share."""
    n, width = b.values.shape
    dtype = np.dtype([
        ("fields", ">i2"),
        ("day_len", ">i4"), ("day", ">i4"),
        ("il_len", ">i4"), ("il", ">i2"),
        ("total_len", ">i4"), ("total", ">f8"),
        ("up_len", ">i4"), ("up", ">i8"),
        ("ms_len", ">i4"), ("ms", ">i8"),
        ("line_len", ">i4"), ("line", ">i4"),
        ("arr_len", ">i4"), ("arr_head", ">i4", (5,)),
        ("arr", [("len", ">i4"), ("v", ">f8")], (width,)),
        ("q_len", ">i4"), ("q", f"S{width}"),
    ])  # fmt: skip
    rows = np.empty(n, dtype=dtype)
    rows["fields"] = FIXED_COLUMNS + TEXT_COLUMNS
    rows["day_len"], rows["day"] = 4, b.day.astype(np.int64) - _PG_EPOCH_DAYS
    rows["il_len"], rows["il"] = 2, b.interval_length
    rows["total_len"], rows["total"] = 8, b.totals
    rows["up_len"], rows["up"] = 8, _micros(b.update_datetime)
    rows["ms_len"], rows["ms"] = 8, _micros(b.msats_load_datetime)
    rows["line_len"], rows["line"] = 4, b.line
    rows["arr_len"] = 20 + 12 * width
    rows["arr_head"] = (1, 0, _FLOAT8_OID, width, 1)  # ndim, has nulls, element type, dim, lbound
    rows["arr"]["len"] = 8
    rows["arr"]["v"] = b.values
    rows["q_len"] = width
    rows["q"] = b.quality.view(f"S{width}").reshape(n)
    return rows.tobytes(), dtype.itemsize


class _Text:
    """Encoded text fields, memoised: NMIs, suffixes and methods repeat row after row."""

    def __init__(self) -> None:
        self._cache: dict[str, bytes] = {"": _NULL}

    def __call__(self, value: str) -> bytes:
        out = self._cache.get(value)
        if out is None:
            raw = value.encode()
            out = struct.pack(">i", len(raw)) + raw
            if len(self._cache) < 50_000:
                self._cache[value] = out
        return out


def channel_days_binary(b: ChannelDays) -> bytes:
    """The rows of ``b`` in COPY BINARY tuple format (no header/trailer; see md_stage_cd)."""
    fixed, size = _fixed(b)
    text = _Text()
    keep = _Text()
    keep._cache.pop("")  # register_id is NOT NULL: an empty one stays an empty string
    parts: list[bytes] = []
    for i in range(len(b)):
        methods = b.interval_methods[i]
        if methods is None:
            jsonb = _NULL
        else:
            raw = b"\x01" + json.dumps(methods).encode()
            jsonb = struct.pack(">i", len(raw)) + raw
        parts.append(fixed[i * size : (i + 1) * size])
        parts.append(
            b"".join(
                (
                    text(b.nmi[i]),
                    text(b.suffix[i]),
                    keep(b.register_id[i]),
                    text(b.uom[i]),
                    text(b.quality_method[i]),
                    text(b.reason_code[i]),
                    text(b.reason_description[i]),
                    jsonb,
                )
            )
        )
    return b"".join(parts)


# --- text COPY for basic reads (few rows: a read per meter per quarter) ------------------------

_TEXT_NULL = "\\N"
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\r": "\\r", "\n": "\\n"})


def _esc(value: str) -> str:
    return value.translate(_ESCAPES) if ("\\" in value or "\t" in value) else value


def _opt(value: str) -> str:
    return _esc(value) if value else _TEXT_NULL


def _stamps(arr: np.ndarray[Any, Any]) -> list[str]:
    """Market-time (UTC+10) timestamps as COPY text; NaT as NULL."""
    texts = np.datetime_as_string(arr, unit="s").tolist()
    return [_TEXT_NULL if t == "NaT" else t + "+10" for t in texts]


def basic_read_lines(b: BasicReads) -> Iterator[str]:
    """One COPY text line per basic read of ``b`` (columns of ``md_stage_br``)."""
    prev_at, cur_at = _stamps(b.previous_read_at), _stamps(b.current_read_at)
    updates, msats = _stamps(b.update_datetime), _stamps(b.msats_load_datetime)
    nxt_text = np.datetime_as_string(b.next_scheduled_read).tolist()
    nxt = [_TEXT_NULL if t == "NaT" else t for t in nxt_text]
    prev, cur, qty = b.previous_read.tolist(), b.current_read.tolist(), b.quantity.tolist()
    for i in range(len(b)):
        yield (
            "\t".join(
                (
                    b.nmi[i],
                    _esc(b.register_id[i]),
                    b.suffix[i],
                    _opt(b.meter_serial[i]),
                    b.direction[i],
                    repr(prev[i]),
                    prev_at[i],
                    b.previous_quality_method[i],
                    repr(cur[i]),
                    cur_at[i],
                    b.current_quality_method[i],
                    _opt(b.current_reason_code[i]),
                    repr(qty[i]),
                    b.uom[i],
                    nxt[i],
                    updates[i],
                    msats[i],
                    str(b.line[i]),
                )
            )
            + "\n"
        )
