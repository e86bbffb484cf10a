"""The vectorised tariff engine: a chunk of accounts' half-hourly kWh -> monthly line items.

Arrays, not loops over intervals: each account-day gets its tariff version (searchsorted on
effective dates), each half-hour its time-of-use band (local time of the account's state,
weekday/weekend), then kWh are summed per (account, calendar month, version[, band]) with
bincount. Money is integer arithmetic: quantities in Wh, rates in 1/10,000 cent, each line
rounded half away from zero to the cent, GST 10% of the rounded line, also rounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from functools import cache
from itertools import pairwise
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from tether.accruals.tariffs import SLOTS, TariffBook

ZONES = {
    "NSW": "Australia/Sydney",
    "VIC": "Australia/Melbourne",
    "QLD": "Australia/Brisbane",
    "SA": "Australia/Adelaide",
}
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Line:
    account: int  # index in the chunk
    month: date
    code: str
    rate_e4: int
    qty_wh: int
    unit: str
    cents: int
    gst_cents: int


def _round_div(num: int, den: int) -> int:
    """num / den rounded half away from zero (integers only: no float in money)."""
    q = (abs(num) * 2 + den) // (2 * den)
    return q if num >= 0 else -q


def line(
    account: int, month: date, code: str, rate_e4: int, qty_wh: int, unit: str, sign: int = 1
) -> Line:
    cents = sign * _round_div(qty_wh * rate_e4, 10_000_000)
    return Line(account, month, code, rate_e4, qty_wh, unit, cents, _round_div(cents, 10))


AEST = timezone(timedelta(hours=10))  # market time
WEEK = 7 * SLOTS


@cache
def local_offsets(jurisdiction: str, d0: date, days: int) -> I64:
    """[day, slot]: half-hours the state's clock is ahead of market time (AEST) at the slot start.

    Per slot, not per day: a DST change happens mid-day (02:00 AEST), so the slots before it keep
    the old offset. The zone is asked only at weekly marks and to bisect a change between two
    (zones change at most twice a year), then the array is filled in one go."""
    zone, t0 = ZoneInfo(ZONES[jurisdiction]), datetime.combine(d0, time(), AEST)

    def ahead(k: int) -> int:
        offset = (t0 + timedelta(minutes=30 * k)).astimezone(zone).utcoffset()
        assert offset is not None
        return round(offset.total_seconds() / 1800) - 20

    n = days * SLOTS
    marks = [*range(0, n, WEEK), max(n - 1, 0)]
    at, to = [0], [ahead(0)]
    for lo, hi in pairwise(marks):
        if ahead(hi) == ahead(lo):
            continue
        while hi - lo > 1:  # the first slot of the new offset
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if ahead(mid) == ahead(lo) else (lo, mid)
        at.append(hi)
        to.append(ahead(hi))
    pos = np.searchsorted(np.array(at), np.arange(n), side="right") - 1
    return np.array(to, np.int64)[pos].reshape(days, SLOTS)


def price(
    book: TariffBook,
    tariffs: list[str],
    jurisdictions: list[str],
    d0: date,
    start: I64,
    kwh: F64,
) -> tuple[list[Line], dict[int, str]]:
    """Lines for accounts i (kwh[kind, i, day, slot], days from d0, priced from start[i]);
    and the accounts that cannot be priced, with why (their lines are left out)."""
    _, n, days, _ = kwh.shape
    dates = np.datetime64(d0, "D") + np.arange(days)
    valid = np.arange(days)[None, :] >= start[:, None]
    by_tariff = {t: book.of(t, dates) for t in sorted(set(tariffs))}
    ver = np.stack([by_tariff[t] for t in tariffs]) if n else np.zeros((0, days), np.int64)
    problems: dict[int, str] = {}
    for i, t in enumerate(tariffs):
        found = book.problems(t)
        if found and valid[i].any():
            problems[i] = "; ".join(found)
    no_cl = np.array([v.controlled_e4 is None for v in book.versions] or [False])
    cl_day = kwh[1].sum(axis=2) > 0
    for i in np.nonzero((valid & cl_day & (ver >= 0) & no_cl[np.maximum(ver, 0)]).any(axis=1))[0]:
        problems.setdefault(int(i), f"tariff {tariffs[i]} has no controlled_load rate")
    for i in np.nonzero((valid & (ver < 0)).any(axis=1))[0]:
        problems.setdefault(
            int(i), f"tariff {tariffs[i]} has no version in force on every unbilled day"
        )
    valid &= ~np.isin(np.arange(n), list(problems))[:, None]
    if not valid.any():
        return [], problems
    months = dates.astype("datetime64[M]")
    month_list = np.unique(months)
    mo = np.searchsorted(month_list, months)
    nver = len(book.versions)
    # time-of-use bands per half-hour: TOU[version, weekend, local slot] (-1: not tou), weekend
    # of the local date: the local clock may be a day ahead (or behind) of the market date
    tou = np.stack([v.tou for v in book.versions])
    juris = sorted(set(jurisdictions))
    offs = np.stack([local_offsets(j, d0, days) for j in juris])
    at = np.arange(SLOTS) + offs[np.searchsorted(juris, jurisdictions)]  # account, day, slot
    local_day = dates.astype(np.int64)[None, :, None] + at // SLOTS
    weekend = (local_day + 3) % 7 >= 5  # 1970-01-01 = Thursday
    band = tou[np.maximum(ver, 0)[:, :, None], weekend.astype(np.int64), at % SLOTS]
    nb = max([1] + [len(v.bands) for v in book.versions])  # every band, used here or not
    cell = (np.arange(n)[:, None] * days + np.arange(days)[None, :])[:, :, None]
    band_kwh = np.bincount(
        (cell * nb + np.maximum(band, 0)).ravel(), weights=kwh[0].ravel(), minlength=n * days * nb
    ).reshape(n, days, nb)
    day_sums = kwh.sum(axis=3)  # kind, n, days
    i_idx, j_idx = np.nonzero(valid)
    key = (i_idx * len(month_list) + mo[j_idx]) * nver + ver[i_idx, j_idx]
    groups, inv = np.unique(key, return_inverse=True)
    ng = len(groups)
    ndays = np.bincount(inv, minlength=ng)
    sums = [np.bincount(inv, weights=day_sums[k, i_idx, j_idx], minlength=ng) for k in range(3)]
    bands = np.stack(
        [np.bincount(inv, weights=band_kwh[i_idx, j_idx, b], minlength=ng) for b in range(nb)],
        axis=1,
    )
    wh = [np.rint(s * 1000).astype(np.int64) for s in sums]
    band_wh = np.rint(bands * 1000).astype(np.int64)
    lines: list[Line] = []
    for g, k in enumerate(groups.tolist()):
        v_i = k % nver
        i, m_i = divmod(k // nver, len(month_list))
        month = month_list[m_i].astype("datetime64[D]").astype(date)
        lines += _group_lines(
            book,
            v_i,
            int(i),
            month,
            int(ndays[g]),
            (int(wh[0][g]), int(wh[1][g]), int(wh[2][g])),
            band_wh[g],
        )
    return lines, problems


def _group_lines(
    book: TariffBook,
    v_i: int,
    i: int,
    month: date,
    ndays: int,
    wh: tuple[int, int, int],
    band_wh: I64,
) -> list[Line]:
    """Line items of one account, month and tariff version."""
    v = book.versions[v_i]
    general, controlled, export = wh
    out = [line(i, month, "SUPPLY", v.supply_e4, ndays * 1000, "day")]
    if v.usage == "flat":
        out.append(line(i, month, "USAGE", v.flat_e4, general, "kWh"))
    elif v.usage == "block":
        below = 0
        for limit, rate, name in v.blocks:  # thresholds pro-rated to the days in this group
            top = general if limit is None else min(general, limit * ndays)
            out.append(line(i, month, f"BLOCK_{name}", rate, max(top - below, 0), "kWh"))
            below = max(below, top)
    else:
        for b, (name, rate) in enumerate(v.bands):
            out.append(line(i, month, f"TOU_{name.upper()}", rate, int(band_wh[b]), "kWh"))
    if controlled:
        out.append(line(i, month, "CONTROLLED_LOAD", v.controlled_e4 or 0, controlled, "kWh"))
    if export and v.feed_in_e4:
        out.append(line(i, month, "FEED_IN", v.feed_in_e4, export, "kWh", sign=-1))
    return out
