"""Basic meters' half-hourly kWh: each register's reads spread evenly over their days, then the
run's estimated read per register up to the period end, shaped by the segment profile.

A register is an account's (suffix, kind): two general registers (peak `11` and off-peak `12`)
each get their own reads and estimated read, and the kind's energy is their sum. Without a
previous actual read a register's estimate is segment x micro-scalar (the account's kind, all
its registers added up) split equally between the kind's registers (docs/accruals.md, `price`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import psycopg

from tether.accruals.sql import Q

if TYPE_CHECKING:
    from datetime import date

    from tether.accruals.energy import Energy


def basic(
    conn: psycopg.Connection[Any],
    period_end: date,
    as_at: object,
    e: Energy,
    ids: list[str],
    pos: list[int],
    shapes: list[npt.NDArray[np.float64]],
    scal: npt.NDArray[np.float64],
    month: npt.NDArray[np.int64],
    weekend: npt.NDArray[np.int64],
    names: list[list[str]],
) -> None:
    """Fill ``e`` for basic accounts ``ids`` (chunk positions ``pos``): the run's estimated read
    per register, its kWh per kind."""
    days = e.kwh.shape[2]
    rows = [
        r
        for r in conn.execute(
            Q["basic_reads"], {"period_end": period_end, "ids": ids, "as_at": as_at}
        ).fetchall()
        if r[2] >= 0
    ]
    where = {a: n for n, a in enumerate(ids)}
    keys = {(where[r[0]], r[1], r[2]) for r in rows}
    read_any = {n for n, _, _ in keys}
    keys |= {(n, "E1", 0) for n in range(len(ids)) if n not in read_any}
    regs = sorted(keys)  # (account, suffix, kind): per account by suffix, as its reads
    reg_of = {key: i for i, key in enumerate(regs)}
    n_reg = len(regs)
    rp = np.array(pos, np.int64)[[r[0] for r in regs]]
    rk = np.array([r[2] for r in regs], np.int64)
    # reads (ordered by register, then current read time: a later read wins a day)
    rows = [r for r in rows if r[4] > r[3]]
    j_reg = np.array([reg_of[(where[r[0]], r[1], r[2])] for r in rows], np.int64)
    prev = np.array([r[3] for r in rows], "datetime64[D]")
    cur = np.array([r[4] for r in rows], "datetime64[D]")
    span = (cur - prev).astype(np.int64)
    rate = np.array([r[5] for r in rows], np.float64) / span
    first_q = np.array([(r[6] or "")[:1] for r in rows], "U1")
    d0 = np.datetime64(e.d0, "D")
    lo = np.maximum((prev - d0).astype(np.int64) + 1, 0)
    hi = np.maximum(np.minimum((cur - d0).astype(np.int64) + 1, days), 0)
    day = np.arange(days)
    cover = (day[None, :] >= lo[:, None]) & (day[None, :] < hi[:, None])
    owner = np.full((n_reg, days), -1, np.int64)
    np.maximum.at(owner, j_reg, np.where(cover, np.arange(len(rows))[:, None], -1))
    covered = owner >= 0
    o = np.maximum(owner, 0)
    daily = np.where(covered, rate[o], 0.0) if len(rows) else np.zeros((n_reg, days))
    est_day = covered & np.isin(first_q, ("E", "S"))[o] if len(rows) else covered
    last_af = np.full(n_reg, -1, np.int64)
    af = np.flatnonzero(np.isin(first_q, ("A", "F")))
    np.maximum.at(last_af, j_reg[af], af)
    has_read = np.zeros(n_reg, bool)
    has_read[j_reg] = True
    in_window = day[None, :] >= e.start[rp][:, None]
    gap = in_window & ~covered
    for p in np.unique(rp[(est_day & in_window).any(axis=1)]).tolist():
        e.methods[p].add("distributor")
    # registers of each (account, kind): the segment estimate's share
    kp, inv, count = np.unique(rk * e.kwh.shape[1] + rp, return_inverse=True, return_counts=True)
    inv = inv.reshape(-1)
    need = np.flatnonzero(gap.any(axis=1))
    prior = last_af >= 0
    value = np.zeros(n_reg)
    value[prior] = rate[last_af[prior]]
    for r in need[~prior[need]].tolist():  # segment x scalar, shared by the kind's registers
        k, p = int(rk[r]), int(rp[r])
        value[r] = scal[k, p] * _segment_daily(shapes[k][p]) / int(count[inv[r]])
    daily = np.where(gap, value[:, None], daily)
    for r in need.tolist():
        method = "previous_read" if prior[r] else "segment"
        p = int(rp[r])
        e.methods[p].add(method)
        first = e.d0 + timedelta(days=int(np.argmax(gap[r])))
        total = round(float(daily[r, gap[r]].sum()), 3)
        e.est_reads.append((p, regs[r][1], first - timedelta(days=1), period_end, total, method))
    est_day |= gap
    kd = np.zeros((len(kp), days))
    np.add.at(kd, inv, daily)
    ke = np.zeros((len(kp), days), bool)
    np.logical_or.at(ke, inv, est_day)
    uk, up = kp // e.kwh.shape[1], kp % e.kwh.shape[1]
    for k in range(len(shapes)):
        sel = np.flatnonzero(uk == k)
        if not len(sel):
            continue
        shape = shapes[k][up[sel]][:, month, weekend]  # account, day, 48
        tot = shape.sum(axis=2, keepdims=True)
        ok = np.isfinite(tot) & (tot > 0)
        norm = np.where(ok, np.nan_to_num(shape) / np.where(ok, tot, 1), 1 / 48)
        e.kwh[k, up[sel]] = kd[sel][:, :, None] * norm
        e.est[k, up[sel]] = ke[sel][:, :, None]
    for r in np.flatnonzero(~has_read).tolist():
        if names[rk[r]][rp[r]] == "none":
            e.flags[int(rp[r])].add("no_profile")


def _segment_daily(shape: npt.NDArray[np.float64]) -> float:
    totals = shape.sum(axis=2)
    totals = totals[np.isfinite(totals) & (totals > 0)]
    return float(totals.mean()) if totals.size else 0.0
