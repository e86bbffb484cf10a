"""Segment profiles, their check and fix, and micro-scalars: what fills a gap in meter data.

A profile is the mean kWh per half-hour (market time) of actual account-days of a channel kind
(each of the kind's channels read, every interval A or F, the channels added up) by segment
(distributor, state or nation; customer class; channel kind), month and day type.
A segment's (month, day type) cell with fewer contributing NMIs than the minimum falls back to
its parent's cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

from tether.accruals import columns, parallel
from tether.accruals.settings import AccrualsSettings
from tether.accruals.sql import Q

KINDS = ("general", "controlled", "export")
LEVELS = ("distributor", "jurisdiction", "national")
F64 = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]
ACTUAL = np.frombuffer(b"AF", np.uint8)


@dataclass(frozen=True)
class Accounts:
    """The run's accounts in account_id order (index = position)."""

    ids: list[str]
    nmi: list[str]
    cls: list[str]
    jur: list[str]
    dist: list[str]
    tariff: list[str]
    meter: list[str]
    billed_to: list[date]
    never_billed: list[bool]
    billed_past: list[bool]
    chunk: npt.NDArray[np.int64]

    @classmethod
    def load(
        cls, conn: psycopg.Connection[Any], period_end: date, ids: Sequence[str] | None = None
    ) -> Accounts:
        if ids is None:
            rows = conn.execute(Q["run_accounts"], {"period_end": period_end}).fetchall()
        else:
            rows = conn.execute(
                Q["run_accounts_of"], {"period_end": period_end, "ids": list(ids)}
            ).fetchall()
        cols: list[list[Any]] = [list(c) for c in zip(*rows, strict=True)] if rows else [[]] * 12
        return cls(
            cols[0],
            cols[1],
            cols[2],
            cols[3],
            cols[4],
            cols[5],
            cols[6],
            cols[7],
            cols[8],
            cols[9],
            np.array(cols[10], np.int64),
        )

    def segment_keys(self, level: str) -> list[tuple[str, str]]:
        area = {"distributor": self.dist, "jurisdiction": self.jur}.get(level)
        return [(area[i] if area else "AU", self.cls[i]) for i in range(len(self.ids))]


def _weekend(d0: date, days: int) -> npt.NDArray[np.int64]:
    dow = (np.arange(days) + d0.weekday()) % 7
    return (dow >= 5).astype(np.int64)


def _months(d0: date, days: int) -> npt.NDArray[np.int64]:
    dates = np.datetime64(d0, "D") + np.arange(days)
    return (dates.astype("datetime64[M]").astype(np.int64) % 12).astype(np.int64)


def compute_profiles(
    conn: psycopg.Connection[Any], url: str, period_end: date, as_at: object, s: AccrualsSettings
) -> int:
    """Accumulate actual account-days by distributor segment, roll up, store; rows written.

    The channel-days are read in account ranges over two more connections (``url``) at once,
    and added up in account order, so the sums are the same as read one after another."""
    acc = Accounts.load(conn, period_end)
    n = len(acc.ids)
    d0 = period_end - timedelta(days=s.profile_days - 1)
    weekend, month = _weekend(d0, s.profile_days), _months(d0, s.profile_days)
    keys = acc.segment_keys("distributor")
    seg_names = sorted(set(keys))
    seg_of = np.array([seg_names.index(k) for k in keys] if n else [], np.int64)
    shape = (len(seg_names), 3, 12, 2)
    sums, days = np.zeros((*shape, 48)), np.zeros(shape)
    contrib = np.zeros((n, 3, 12, 2), bool)

    nth: dict[tuple[str, str], int] = {}
    picked = []  # at most max_contributors accounts per distributor segment, first by account id
    for i, seg in enumerate(keys):
        nth[seg] = nth.get(seg, 0) + 1
        if nth[seg] <= s.max_contributors:
            picked.append(i)

    def part(pos: list[int]) -> parallel.Task[columns.Days]:
        params = {"period_end": period_end, "d0": d0, "as_at": as_at, "pos": pos}
        params["nmis"] = [acc.nmi[i] for i in pos]
        return lambda c: columns.fetch(c, Q["profile_days"], params)

    step = max(s.chunk_size, 1)
    parts = [part(picked[j : j + step]) for j in range(0, len(picked), step)]
    for got in parallel.ordered(url, parts):
        a, d, k, v = _account_days(got)
        key = (seg_of[a], k, month[d], weekend[d])
        np.add.at(sums, key, v)
        np.add.at(days, key, 1)
        contrib[a, k, month[d], weekend[d]] = True
    rows = []
    jur_of = dict(zip(acc.dist, acc.jur, strict=True))
    for level in LEVELS:
        groups: dict[tuple[str, str], list[int]] = {}
        for i, (dist, c) in enumerate(seg_names):
            area = {"distributor": dist, "jurisdiction": jur_of.get(dist, "?")}.get(level, "AU")
            groups.setdefault((area, c), []).append(i)
        for (area, c), members in sorted(groups.items()):
            nmis = np.isin(seg_of, members)
            cnt = contrib[nmis].sum(axis=0)
            ssum, sday = sums[members].sum(axis=0), days[members].sum(axis=0)
            for k, m, w in zip(*np.nonzero(sday), strict=True):
                mean = ssum[k, m, w] / sday[k, m, w]
                rows.append(
                    (
                        period_end,
                        level,
                        area,
                        c,
                        KINDS[k],
                        int(m) + 1,
                        bool(w),
                        int(cnt[k, m, w]),
                        float(mean.sum()),
                        [float(x) for x in mean],
                    )
                )
    with conn.cursor() as cur:
        cur.execute(Q["delete_profiles"], {"period_end": period_end})
        with cur.copy(Q["copy_profiles"]) as copy:
            for row in rows:
                copy.write_row(row)
    return len(rows)


def _account_days(got: columns.Days) -> tuple[Any, Any, Any, F64]:
    """(account, day, kind, 48 kWh) of each actual account-day of a kind: every channel of the
    kind the account read in the window read that day, all A/F, and their kWh added up (E1 and
    11 are one day's consumption, not two days). In the rows' order, by each day's first row;
    with one channel per kind (nearly every account), a row's day as it is."""
    ok = np.isin(got.q, ACTUAL).all(axis=1) & np.isfinite(got.vals).all(axis=1)
    ak = got.a * len(KINDS) + got.k
    width = len(got.suffixes) + 1
    pairs = np.unique(ak * width + got.c + 1) // width  # (account, kind) of each channel
    owners, channels = np.unique(pairs, return_counts=True)
    if (channels == 1).all():
        return got.a[ok], got.d[ok], got.k[ok], got.vals[ok]
    day_key = ak * (int(got.d.max()) + 1) + got.d
    _, first, inv = np.unique(day_key, return_index=True, return_inverse=True)
    sums = np.zeros((len(first), 48))
    np.add.at(sums, inv[ok], got.vals[ok])
    good = (
        np.bincount(inv[ok], minlength=len(first)) == channels[np.searchsorted(owners, ak)][first]
    )
    order = np.argsort(first[good], kind="stable")
    rows = first[good][order]
    return got.a[rows], got.d[rows], got.k[rows], sums[good][order]


def check_and_fix(conn: psycopg.Connection[Any], period_end: date, s: AccrualsSettings) -> int:
    """Clip negative means, cap spikes at 10x the day's median, log thin segments; log size."""
    log: list[tuple[str, str, str]] = []
    rows = conn.execute(Q["profiles"], {"period_end": period_end}).fetchall()
    for level, area, c, kind, m, w, contributors, _daily, shape in rows:
        seg = f"{level}:{area}:{c}:{kind}:m{m:02d}:{'we' if w else 'wd'}"
        arr = np.array(shape)
        fixed = arr.copy()
        if (fixed < 0).any() and kind != "export":
            log.append((seg, "clip_negative", f"{int((fixed < 0).sum())} intervals set to 0"))
            fixed = np.maximum(fixed, 0)
        med = float(np.median(fixed))
        if med > 0 and (fixed > 10 * med).any():
            log.append((seg, "cap_spike", f"{int((fixed > 10 * med).sum())} intervals capped"))
            fixed = np.minimum(fixed, 10 * med)
        if contributors < s.min_contributors and level != "national":
            log.append((seg, "thin", f"{contributors} < {s.min_contributors} NMIs: parent used"))
        if not np.array_equal(fixed, arr):
            conn.execute(
                Q["fix_profile"],
                {
                    "period_end": period_end,
                    "level": level,
                    "area": area,
                    "cls": c,
                    "kind": kind,
                    "month": m,
                    "weekend": w,
                    "shape": [float(x) for x in fixed],
                },
            )
    conn.execute(Q["delete_fix_log"], {"period_end": period_end})
    with conn.cursor() as cur, cur.copy(Q["copy_fix_log"]) as copy:
        for seq, (seg, action, detail) in enumerate(log):
            copy.write_row((period_end, seq, seg, action, detail))
    return len(log)


class Profiles:
    """Resolved profile per (account, kind, month, weekend): its own segment's or a parent's.

    Decided per (month, weekend) cell, as the contributors are counted per cell: a segment can
    be thick on weekdays and thin on weekends, and a thin cell is only a few NMIs' noise."""

    def __init__(self, conn: psycopg.Connection[Any], period_end: date, min_contrib: int) -> None:
        self.table: dict[tuple[str, str, str, int], tuple[Mask, F64]] = {}
        rows = conn.execute(Q["profiles"], {"period_end": period_end}).fetchall()
        raw: dict[tuple[str, str, str, int], tuple[npt.NDArray[np.int64], F64]] = {}
        for level, area, c, kind, m, w, contributors, _daily, shape in rows:
            key = (level, area, c, KINDS.index(kind))
            cnt, arr = raw.setdefault(
                key, (np.zeros((12, 2), np.int64), np.full((12, 2, 48), np.nan))
            )
            cnt[m - 1, int(w)], arr[m - 1, int(w)] = contributors, shape
        self._resolved: dict[tuple[str, str, str, int], tuple[str, F64 | None]] = {}
        for key, (cnt, arr) in raw.items():
            have: Mask = np.isfinite(arr.sum(axis=2))  # month, weekend
            ok: Mask = have & ((cnt >= min_contrib) | (key[0] == "national"))
            # months outside the profile window: the mean of its months with enough contributors
            # (else of all its months, and then as thin as they are)
            src: Mask = np.where(ok.any(axis=0), ok, have)
            fill = np.where(src[:, :, None], np.nan_to_num(arr), 0).sum(axis=0)
            fill /= np.maximum(src.sum(axis=0), 1)[:, None]
            gap: Mask = ~have & src.any(axis=0)
            self.table[key] = (ok | (gap & ok.any(axis=0)), np.where(gap[:, :, None], fill, arr))

    def resolve(self, dist: str, jur: str, cls: str, kind: int) -> tuple[str, F64 | None]:
        """(segment name, shapes[12, 2, 48]): each cell from the first level with enough
        contributors (national whatever its count); named after the finest level used."""
        key = (dist, jur, cls, kind)
        if key not in self._resolved:
            name, out = "none", np.full((12, 2, 48), np.nan)
            for level, area in (("national", "AU"), ("jurisdiction", jur), ("distributor", dist)):
                found = self.table.get((level, area, cls, kind))
                if found is not None and found[0].any():
                    name = f"{level}:{area}:{cls}"
                    out = np.where(found[0][:, :, None], found[1], out)
            self._resolved[key] = (name, None if name == "none" else out)
        return self._resolved[key]


def compute_scalars(
    conn: psycopg.Connection[Any], url: str, period_end: date, as_at: object, s: AccrualsSettings
) -> int:
    """Account daily average over the history / its segment's, capped; stored per kind.

    The averages are read in two halves of the accounts (account order) over two connections
    (``url``) at once; the rows are the same, in the same order, as from one query."""
    d0 = period_end - timedelta(days=s.history_days - 1)
    acc = Accounts.load(conn, period_end)
    half = (len(acc.ids) + 1) // 2

    def part(ids: list[str]) -> parallel.Task[list[tuple[Any, ...]]]:
        params = {"period_end": period_end, "d0": d0, "as_at": as_at, "ids": ids}
        return lambda c: c.execute(Q["account_daily"], params).fetchall()

    rows = [
        r
        for got in parallel.ordered(url, [part(acc.ids[:half]), part(acc.ids[half:])])
        for r in got
    ]
    where = {a: i for i, a in enumerate(acc.ids)}
    per_seg: dict[tuple[str, str, str, int], list[float]] = {}
    for account_id, kind, avg in rows:
        i = where[account_id]
        for level, area in (
            ("distributor", acc.dist[i]),
            ("jurisdiction", acc.jur[i]),
            ("national", "AU"),
        ):
            per_seg.setdefault((level, area, acc.cls[i], kind), []).append(avg)
    out = []
    for account_id, kind, avg in rows:
        i = where[account_id]
        seg_avg = 0.0
        for level, area in (
            ("distributor", acc.dist[i]),
            ("jurisdiction", acc.jur[i]),
            ("national", "AU"),
        ):
            vals = per_seg[(level, area, acc.cls[i], kind)]
            if len(vals) >= s.min_contributors or level == "national":
                seg_avg = float(np.mean(vals))
                break
        scalar = 1.0 if seg_avg <= 0 else min(max(avg / seg_avg, s.scalar_min), s.scalar_max)
        out.append((period_end, account_id, KINDS[kind], round(scalar, 6)))
    conn.execute(Q["delete_scalars"], {"period_end": period_end})
    with conn.cursor() as cur, cur.copy(Q["copy_scalars"]) as copy:
        for row in out:
            copy.write_row(row)
    return len(out)


def scalars_of(
    conn: psycopg.Connection[Any], period_end: date, ids: Sequence[str]
) -> dict[tuple[str, int], float]:
    rows = conn.execute(Q["scalars"], {"period_end": period_end, "ids": list(ids)}).fetchall()
    return {(a, KINDS.index(k)): float(v) for a, k, v in rows}
