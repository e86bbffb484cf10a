"""A chunk's half-hourly kWh over its unbilled windows: actual data first, then estimates.

Interval meters: stored channel-days (actual A/F; the distributor's E/S count as estimated),
then segment profile x micro-scalar for missing days and missing (N) intervals. Basic meters:
reads spread evenly over their days, then an estimated read up to the period end at the last
actual read's daily average (else segment x micro-scalar), shaped by the segment profile, per
register (basic.py).

Energy is summed per channel kind (what pricing needs); each estimated channel-day is kept under
the meter's own suffix. Two channels of one kind on a day (E1 and 11) share the kind's estimate
of a half-hour equally; a day no channel of the kind read is estimated once, under the channel
the account's data used last (docs/accruals.md, stage `price`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

from tether.accruals import basic as basic_meters
from tether.accruals import columns
from tether.accruals.estimate import KINDS, Accounts, Profiles
from tether.accruals.sql import Q

SUFFIX = ("E1", "E2", "B1")  # suffix of an estimated kind the account has never had data of
Q_EST = np.frombuffer(b"ESV", np.uint8)
Q_N = ord("N")


@dataclass
class Energy:
    d0: date
    start: npt.NDArray[np.int64]  # first unbilled day index per account
    kwh: npt.NDArray[np.float64]  # kind, account, day, half-hour
    est: npt.NDArray[np.bool_]  # same shape: estimated (distributor's or ours)
    methods: list[set[str]]
    flags: list[set[str]]
    segment: list[str]
    scalar: list[float]
    # account, suffix, day, values, and for a day filled only in part its read_methods (None:
    # the whole day is ours); run._write copies them to acc.run_estimated_day
    est_days: list[tuple[int, str, date, list[float], list[str | None] | None]] = field(
        default_factory=list
    )
    est_reads: list[tuple[int, str, date, date, float, str]] = field(default_factory=list)


def _shapes(
    profiles: Profiles, acc: Accounts, idx: Sequence[int], kind: int
) -> tuple[list[str], npt.NDArray[np.float64]]:
    names, out = [], np.zeros((len(idx), 12, 2, 48))
    for n, i in enumerate(idx):
        name, arr = profiles.resolve(acc.dist[i], acc.jur[i], acc.cls[i], kind)
        names.append(name)
        if arr is not None:
            out[n] = arr
    return names, out


def build(
    conn: psycopg.Connection[Any],
    period_end: date,
    as_at: object,
    acc: Accounts,
    idx: Sequence[int],
    profiles: Profiles,
    scalars: dict[tuple[str, int], float],
) -> Energy:
    """Energy of accounts ``idx`` (positions in ``acc``) from their billed-to to period end."""
    n = len(idx)
    starts = [min(acc.billed_to[i], period_end) + timedelta(days=1) for i in idx]
    d0 = min(starts, default=period_end)
    d0 = min(d0, period_end)
    days = (period_end - d0).days + 1
    start = np.array([(s - d0).days for s in starts], np.int64)
    dates = np.datetime64(d0, "D") + np.arange(days)
    month = dates.astype("datetime64[M]").astype(np.int64) % 12
    weekend = ((dates.astype(np.int64) + 3) % 7 >= 5).astype(np.int64)
    valid = np.arange(days)[None, :] >= start[:, None]
    kwh = np.zeros((3, n, days, 48))
    est = np.zeros((3, n, days, 48), bool)
    present = np.zeros((3, n, days), bool)
    ids = [acc.ids[i] for i in idx]
    scal = np.array([[scalars.get((a, k), 1.0) for a in ids] for k in range(3)])
    has = np.array([[(a, k) in scalars for a in ids] for k in range(3)])
    has[0] = True
    shapes, names = [], []
    for k in range(3):
        nm, sh = _shapes(profiles, acc, idx, k)
        names.append(nm)
        shapes.append(sh)
    energy = Energy(
        d0=d0,
        start=start,
        kwh=kwh,
        est=est,
        methods=[set() for _ in idx],
        flags=[set() for _ in idx],
        segment=names[0],
        scalar=[float(scal[0, a]) for a in range(n)],
    )
    interval = np.array([acc.meter[i] == "interval" for i in idx], bool)
    got = columns.fetch(
        conn, Q["window_days"], {"ids": ids, "d0": d0, "period_end": period_end, "as_at": as_at}
    )
    nmi = [acc.nmi[i] for i in idx]
    last = np.full((3, n), None, object)  # suffix of the channel each kind's data used last
    known = np.zeros((3, n), bool)
    keep = np.flatnonzero(interval[got.a])
    if len(keep):
        # by (kind, account, day, suffix): channels of one kind on a day add up in one order
        keep = keep[np.lexsort((got.c[keep], got.d[keep], got.a[keep], got.k[keep]))]
        a, d, k, c = got.a[keep], got.d[keep], got.k[keep], got.c[keep]
        v, q = got.vals[keep], got.q[keep]
        sfx = np.array(got.suffixes, object)[c]
        first = np.r_[True, (np.diff(k) != 0) | (np.diff(a) != 0) | (np.diff(d) != 0)]
        missing = (q == Q_N) | ~np.isfinite(v)
        v = np.where(missing, 0.0, v)
        q_est = np.isin(q, Q_EST)
        _add(energy, k, a, d, v, q_est, first)
        present[k, a, d] = True
        # only the account's own window counts: the chunk's day axis starts at its earliest
        # window, so a row before it depends on which accounts share the chunk
        mine = valid[a, d]
        has[k[mine], a[mine]] = True
        for i in np.unique(a[mine & q_est.any(axis=1)]):
            energy.methods[int(i)].add("distributor")
        # per (kind, account): the channel of its latest day (two that day: the lowest suffix)
        by = np.lexsort((c, -d, a, k))
        top = by[np.r_[True, (np.diff(k[by]) != 0) | (np.diff(a[by]) != 0)]]
        last[k[top], a[top]] = sfx[top]
        known[k[top], a[top]] = True
        heads = np.flatnonzero(first)
        width = np.diff(np.r_[heads, len(a)])  # channels of the kind that day
        share = 1.0 / np.repeat(width, width)
        need_part = missing & valid[a, d][:, None]
        read = _read_methods(conn, as_at, d0, nmi, sfx, a, d, q, need_part)
        _fill(energy, shapes, scal, month, weekend, k, a, d, need_part, sfx, v, share, read)
    need = has[:, :, None] & valid[None] & ~present & interval[None, :, None]
    _last_suffixes(conn, as_at, d0, nmi, last, need.any(axis=2) & ~known)
    for k in range(3):
        a, d = np.nonzero(need[k])
        _fill(
            energy,
            shapes,
            scal,
            month,
            weekend,
            np.full(len(a), k),
            a,
            d,
            np.ones((len(a), 48), bool),
            last[k, a],
        )
    basic = [p for p in range(n) if not interval[p]]
    if basic:
        basic_meters.basic(
            conn,
            period_end,
            as_at,
            energy,
            [ids[p] for p in basic],
            basic,
            shapes,
            scal,
            month,
            weekend,
            names,
        )
    for p in range(n):
        if acc.never_billed[idx[p]]:
            energy.flags[p].add("never_billed")
        if acc.billed_past[idx[p]]:
            energy.flags[p].add("billed_past_period_end")
    return energy


def _add(
    e: Energy,
    k: npt.NDArray[np.int64],
    a: npt.NDArray[np.int64],
    d: npt.NDArray[np.int64],
    v: npt.NDArray[np.float64],
    flag: npt.NDArray[np.bool_],
    first: npt.NDArray[np.bool_],
) -> None:
    """Channel-day rows into their kind's day: ``first`` marks each (kind, account, day)'s first
    row (a plain store: nearly every row); a second channel of the kind adds to it, in row order."""
    if first.all():  # one channel per kind and day: no copy of the rows
        e.kwh[k, a, d], e.est[k, a, d] = v, flag
        return
    e.kwh[k[first], a[first], d[first]] = v[first]
    e.est[k[first], a[first], d[first]] = flag[first]
    more = ~first
    np.add.at(e.kwh, (k[more], a[more], d[more]), v[more])
    np.logical_or.at(e.est, (k[more], a[more], d[more]), flag[more])


def _fill(
    e: Energy,
    shapes: list[npt.NDArray[np.float64]],
    scal: npt.NDArray[np.float64],
    month: npt.NDArray[np.int64],
    weekend: npt.NDArray[np.int64],
    k: npt.NDArray[np.int64],
    a: npt.NDArray[np.int64],
    d: npt.NDArray[np.int64],
    mask: npt.NDArray[np.bool_],
    suffix: npt.NDArray[np.object_],
    vals: npt.NDArray[np.float64] | None = None,
    share: npt.NDArray[np.float64] | None = None,
    read: npt.NDArray[np.object_] | None = None,
) -> None:
    """Profile x micro-scalar into the masked half-hours of channel-day rows (of channel
    ``suffix``), x the row's ``share`` of its kind's estimate; ``vals``: the rows' read values
    (None: whole days no channel of the kind read, one row per kind-day); ``read``: per row, its
    read_methods (see _read_methods), None for a whole day."""
    rows = mask.any(axis=1)
    k, a, d, mask, suffix = k[rows], a[rows], d[rows], mask[rows], suffix[rows]
    read = np.full(len(a), None, object) if read is None else read[rows]
    if not len(a):
        return
    stack = np.stack(shapes)  # kind, account, month, weekend, 48
    prof = stack[k, a, month[d], weekend[d]]
    nan = ~np.isfinite(prof).all(axis=1) | (prof.sum(axis=1) == 0)
    fill = np.nan_to_num(prof) * scal[k, a][:, None]
    if vals is None or share is None:
        own = fill
        e.kwh[k, a, d] = fill
        e.est[k, a, d] = True
    else:
        fill *= share[rows][:, None]
        own = np.where(mask, fill, vals[rows])
        np.add.at(e.kwh, (k, a, d), np.where(mask, fill, 0.0))
        np.logical_or.at(e.est, (k, a, d), mask)
    for i in np.unique(a):
        e.methods[int(i)].add("profile")
    for i in np.unique(a[nan]):
        e.flags[int(i)].add("no_profile")
    for aa, ss, dd, vv, rr in zip(
        a.tolist(), suffix.tolist(), d.tolist(), own.tolist(), read.tolist(), strict=True
    ):
        e.est_days.append((aa, ss, e.d0 + timedelta(days=dd), [round(x, 3) for x in vv], rr))


def _read_methods(
    conn: psycopg.Connection[Any],
    as_at: object,
    d0: date,
    nmi: list[str],
    suffix: npt.NDArray[np.object_],
    a: npt.NDArray[np.int64],
    d: npt.NDArray[np.int64],
    q: npt.NDArray[np.uint8],
    filled: npt.NDArray[np.bool_],
) -> npt.NDArray[np.object_]:
    """Per row of a day filled only in part: its half-hours' QualityMethods in the meter data,
    None where we fill (so the export can write a V day whose 400 rows keep what was read); None
    for every other row. One query for the chunk's few such days, none without any."""
    out = np.full(len(a), None, object)
    part = np.flatnonzero(filled.any(axis=1) & ~filled.all(axis=1))
    if not len(part):
        return out
    days = [d0 + timedelta(days=x) for x in d[part].tolist()]
    params = {
        "as_at": as_at,
        "nmi": [nmi[x] for x in a[part].tolist()],
        "suffix": suffix[part].tolist(),
        "day": days,
        "first": min(days),
        "last": max(days),
    }
    found = dict(conn.execute(Q["read_methods"], params).fetchall())
    for n, row in enumerate(part.tolist(), start=1):
        # the day window_days just read is there; its letters are only a fallback
        methods = found.get(n) or [chr(x) for x in q[row].tolist()]
        out[row] = [None if f else m for m, f in zip(methods, filled[row].tolist(), strict=True)]
    return out


def _last_suffixes(
    conn: psycopg.Connection[Any],
    as_at: object,
    d0: date,
    nmi: list[str],
    last: npt.NDArray[np.object_],
    wanted: npt.NDArray[np.bool_],
) -> None:
    """Fill ``last`` (kind, account) where ``wanted`` (the window has no channel of the kind):
    the suffix the account's data used last before the window, else the kind's usual one. One
    query for the chunk's few such accounts, none without any."""
    k, a = np.nonzero(wanted)
    if not len(a):
        return
    params = {"as_at": as_at, "d0": d0, "nmi": [nmi[x] for x in a.tolist()], "k": k.tolist()}
    found = dict(conn.execute(Q["last_suffixes"], params).fetchall())
    for n, (kk, aa) in enumerate(zip(k.tolist(), a.tolist(), strict=True), start=1):
        last[kk, aa] = found.get(n, SUFFIX[kk])


__all__ = ["KINDS", "Energy", "build"]
