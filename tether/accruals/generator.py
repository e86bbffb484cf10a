"""A realistic, deterministic meter-data and billing generator for demos, tests and benchmarks.

``generate(accounts, months, out_dir, seed)`` writes ``accounts.csv``, ``tariffs.csv``,
``invoices.csv`` (columns in docs/accruals.md), one NEM12 file per month and chunk of interval
meters under ``nem12/`` and one NEM13 file per month under ``nem13/``: seasonal and daily load
shapes, solar export (B1), controlled load (E2), 30-minute meters mostly and some 15/5-minute,
monthly and quarterly billing, missing days, estimated (E52) and substituted (S14) days, V days
with 400 rows, and meters whose data stops days before the end. Same seed, same bytes.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tether.accruals import gen_load
from tether.accruals.gen_accounts import Accounts, make_accounts, write_accounts, write_tariffs
from tether.accruals.gen_nem import (
    ESTIMATE,
    MAX_WH,
    MISSING,
    SUBSTITUTE,
    VARIABLE,
    ChannelBlock,
    basic_row,
    write_nem12,
    write_nem13,
)

CHUNK = 1000  #: interval meters per NEM12 file and month
INVOICE_COLUMNS = (
    "invoice_id",
    "account_id",
    "period_from",
    "period_to",
    "issued_at",
    "amount_ex_gst",
)


@dataclass(kw_only=True)
class GenerateResult:
    out_dir: Path
    accounts: int
    start: date
    end: date
    nem12_files: list[Path] = field(default_factory=list)
    nem13_files: list[Path] = field(default_factory=list)
    channel_days: int = 0
    values: int = 0
    basic_reads: int = 0
    invoices: int = 0


def _month_starts(start: date, end: date) -> list[date]:
    months, d = [], start
    while d <= end:
        months.append(d)
        d = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
    return months


def _yyyymmdd(days: npt.NDArray[np.datetime64]) -> list[str]:
    return [s.replace("-", "") for s in np.datetime_as_string(days).tolist()]


def generate(
    accounts: int, months: int, out_dir: Path, seed: int, *, end: date = date(2026, 11, 30)
) -> GenerateResult:
    """Write everything for ``accounts`` accounts over ``months`` calendar months ending at
    ``end`` (inclusive); see the module docstring."""
    first = date(end.year, end.month, 1)
    for _ in range(months - 1):
        first = date(first.year - (first.month == 1), (first.month - 2) % 12 + 1, 1)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "nem12").mkdir(exist_ok=True)
    (out_dir / "nem13").mkdir(exist_ok=True)
    rng = np.random.default_rng([seed, 0])
    acc = make_accounts(rng, accounts)
    result = GenerateResult(out_dir=out_dir, accounts=accounts, start=first, end=end)
    write_accounts(out_dir / "accounts.csv", acc)
    write_tariffs(out_dir / "tariffs.csv", first, end)
    all_days = np.arange(np.datetime64(first), np.datetime64(end) + 1)
    daily = np.zeros((accounts, all_days.size, 3), dtype=np.int64)  # Wh: import, CL, export
    interval_ids = np.flatnonzero(acc.interval)
    for m, month in enumerate(_month_starts(first, end)):
        nxt = date(month.year + (month.month == 12), month.month % 12 + 1, 1)
        days = np.arange(np.datetime64(month), np.datetime64(min(nxt - timedelta(days=1), end)) + 1)
        offset = int((days[0] - all_days[0]).astype(np.int64))
        created = (nxt + timedelta(days=2)).strftime("%Y%m%d") + "0300"
        for c in range(0, interval_ids.size, CHUNK):
            ids = interval_ids[c : c + CHUNK]
            crng = np.random.default_rng([seed, 1, m, c])
            blocks = list(_interval_blocks(crng, acc, ids, days, end, daily, offset))
            path = out_dir / "nem12" / f"NEM12_{month:%Y%m}_{c // CHUNK:03d}.csv"
            written = write_nem12(path, created, blocks)
            result.nem12_files.append(path)
            result.channel_days += written[0]
            result.values += written[1]
    basic_ids = np.flatnonzero(~acc.interval)
    brng = np.random.default_rng([seed, 2])
    level = gen_load.daily_level(brng, acc.scale[basic_ids], acc.business[basic_ids], all_days)
    daily[basic_ids, :, 0] = gen_load.to_wh(level)
    reads = _basic_reads(brng, acc, basic_ids, daily, all_days)
    for month in _month_starts(first, end):
        key = f"{month:%Y%m}"
        rows = [row for when, row in reads if when[:6] == key]
        path = out_dir / "nem13" / f"NEM13_{key}.csv"
        result.basic_reads += write_nem13(path, f"{key}280300", rows)
        result.nem13_files.append(path)
    result.invoices = _write_invoices(out_dir / "invoices.csv", acc, daily, all_days, reads, end)
    return result


def _interval_blocks(
    rng: np.random.Generator,
    acc: Accounts,
    ids: npt.NDArray[np.int64],
    days: npt.NDArray[np.datetime64],
    end: date,
    daily: npt.NDArray[np.int64],
    offset: int,
) -> Iterator[ChannelBlock]:
    """Every channel of the chunk's meters for one month, noting day totals in ``daily``."""
    business = acc.business[ids]
    level = gen_load.daily_level(rng, acc.scale[ids], business, days)
    load = gen_load.half_hours(rng, level, business)
    solar, cl = np.flatnonzero(acc.solar[ids]), np.flatnonzero(acc.controlled[ids])
    net = load[solar] - gen_load.solar(rng, acc.capacity_kw[ids[solar]], days)
    load[solar] = np.maximum(net, 0.0)  # E1 is what the home imports after its own solar
    e1, b1 = gen_load.to_wh(load), gen_load.to_wh(np.maximum(-net, 0.0))
    e2 = gen_load.to_wh(gen_load.controlled(rng, acc.cl_kwh[ids[cl]], days))
    channels = {
        "E1": {k: e1[k] for k in range(ids.size)},
        "B1": {int(k): b1[j] for j, k in enumerate(solar)},
        "E2": {int(k): e2[j] for j, k in enumerate(cl)},
    }
    day_text = _yyyymmdd(days)
    updates = [d + "023000" for d in _yyyymmdd(days + 1)]
    last_day = np.datetime64(end) - acc.lag_days[ids]
    for k, i in enumerate(ids.tolist()):
        parts = 30 // int(acc.interval_length[i])
        for col, suffix in enumerate(("E1", "E2", "B1")):
            if k not in channels[suffix]:
                continue
            wh = np.minimum(gen_load.split(rng, channels[suffix][k], parts), MAX_WH)
            status = _day_status(rng, days.size)
            status[days > last_day[k]] = MISSING
            cut = np.sort(rng.integers(1, wh.shape[1], size=(days.size, 2)), axis=1)
            cut[:, 1] = np.maximum(cut[:, 1], cut[:, 0] + 1)
            _estimate(wh, status, cut)
            daily[i, offset : offset + days.size, col] += wh.sum(axis=1)
            yield ChannelBlock(
                nmi=acc.nmi[i], suffix=suffix, register_id=str(col + 1),
                interval=int(acc.interval_length[i]), days=day_text, updates=updates, wh=wh,
                status=status, cut=cut,
            )  # fmt: skip


def _day_status(rng: np.random.Generator, n: int) -> npt.NDArray[np.int64]:
    u = rng.random(n)
    status = np.zeros(n, dtype=np.int64)
    status[u < 0.04] = VARIABLE
    status[u < 0.035] = SUBSTITUTE
    status[u < 0.03] = ESTIMATE
    status[u < 0.01] = MISSING
    return status


def _estimate(
    wh: npt.NDArray[np.int64], status: npt.NDArray[np.int64], cut: npt.NDArray[np.int64]
) -> None:
    """Estimated days (and a V day's estimated stretch) take the month's average profile."""
    profile = np.rint(wh.mean(axis=0)).astype(np.int64)
    whole = (status == ESTIMATE) | (status == SUBSTITUTE)
    wh[whole] = profile
    for d in np.flatnonzero(status == VARIABLE).tolist():
        a, b = int(cut[d, 0]), int(cut[d, 1])
        wh[d, a:b] = profile[a:b]


def _basic_reads(
    rng: np.random.Generator,
    acc: Accounts,
    ids: npt.NDArray[np.int64],
    daily: npt.NDArray[np.int64],
    all_days: npt.NDArray[np.datetime64],
) -> list[tuple[str, str]]:
    """(read day yyyyMMdd, 250 row) for every scheduled read of every basic meter."""
    out: list[tuple[str, str]] = []
    text = _yyyymmdd(all_days)
    tenths = np.rint(daily[:, :, 0] / 100.0).astype(np.int64)  # Wh -> tenths of kWh
    for i in ids.tolist():
        period = 30 if acc.monthly[i] else 91
        at = int(rng.integers(0, period))
        register = int(rng.integers(0, 500_000))
        prev = (at, register)
        hour = f"{int(rng.integers(8, 16)):02d}{int(rng.integers(0, 60)):02d}00"
        while True:
            nxt = prev[0] + period + int(rng.integers(-2, 3))
            if nxt >= all_days.size:
                break
            register = prev[1] + int(tenths[i, prev[0] : nxt].sum())
            quality = "E64" if rng.random() < 0.05 else "A"
            following = text[nxt + period] if nxt + period < len(text) else ""
            row = basic_row(
                nmi=acc.nmi[i], previous=(prev[1], text[prev[0]] + hour),
                current=(register, text[nxt] + hour), quality=quality, nxt=following,
                update=text[min(nxt + 1, len(text) - 1)] + "030000",
            )  # fmt: skip
            out.append((text[nxt], row))
            prev = (nxt, register)
    return out


def _write_invoices(
    path: Path,
    acc: Accounts,
    daily: npt.NDArray[np.int64],
    all_days: npt.NDArray[np.datetime64],
    reads: list[tuple[str, str]],
    end: date,
) -> int:
    """Invoices issued by ``end``: interval meters on their cycle, basic meters at each read."""
    start: date = all_days[0].item()
    cum = np.concatenate([np.zeros((len(acc), 1, 3)), np.cumsum(daily / 1000.0, axis=1)], axis=1)
    periods: list[tuple[int, date, date]] = []
    for i in range(len(acc)):
        if acc.interval[i]:
            periods += [(i, a, b) for a, b in _cycle(acc, i, start, end)]
    index = {nmi: i for i, nmi in enumerate(acc.nmi)}
    seen: set[int] = set()
    for _, row in reads:
        f = row.split(",")
        i, a, b = index[f[1]], _date(f[9][:8]), _date(f[14][:8]) - timedelta(days=1)
        if i not in seen:  # the bill that ended at the meter's first read in the data
            seen.add(i)
            periods.append((i, a - (b - a) - timedelta(days=1), a - timedelta(days=1)))
        periods.append((i, a, b))
    periods.sort(key=lambda p: (p[0], p[1]))
    count = 0
    with path.open("w", newline="") as handle:
        out = csv.writer(handle, lineterminator="\n")
        out.writerow(INVOICE_COLUMNS)
        for i, a, b in periods:
            issued = b + timedelta(days=3 + i % 4)
            if issued > end or b < a:
                continue
            x, y = max((a - start).days, 0), max((b - start).days + 1, 0)  # energy inside data
            energy = cum[i, y] - cum[i, x]
            supply = ((b - a).days + 1) * 1.0
            amount = energy[0] * 0.30 + energy[1] * 0.15 - energy[2] * 0.05 + supply
            count += 1
            out.writerow((
                f"I{count:08d}", acc.account_id[i], a.isoformat(), b.isoformat(),
                f"{issued.isoformat()}T09:00:00+10:00", f"{amount:.2f}",
            ))  # fmt: skip
    return count


def _cycle(acc: Accounts, i: int, start: date, end: date) -> Iterator[tuple[date, date]]:
    """Billing periods of an interval meter: monthly, or quarterly from its offset month."""
    day = int(acc.cycle_day[i])
    step = 1 if acc.monthly[i] else 3
    month = 0 if acc.monthly[i] else int(acc.cycle_offset[i])
    bounds = []
    while True:
        y, m = divmod(start.month - 1 + month, 12)
        d = date(start.year + y, m + 1, day)
        if d > end:
            break
        bounds.append(d)
        month += step
    yield from ((a, b - timedelta(days=1)) for a, b in itertools.pairwise(bounds))


def _date(text: str) -> date:
    return date(int(text[:4]), int(text[4:6]), int(text[6:8]))
