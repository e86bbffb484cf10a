"""The generator's population: accounts, their meters and channels, and the tariff table.

Column names and values follow docs/accruals.md (agreed with the loader); every draw comes from
the caller's seeded generator, so a seed always gives the same accounts.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import numpy.typing as npt

JURISDICTIONS = ("NSW", "VIC", "QLD", "SA")
_SHARE = (0.36, 0.30, 0.20, 0.14)
_PREFIX = {"NSW": "4", "VIC": "6", "QLD": "3", "SA": "2"}
DISTRIBUTORS = {
    "NSW": ("Ausgrid", "Endeavour", "Essential"),
    "VIC": ("CitiPower", "Powercor", "Jemena", "AusNet", "United"),
    "QLD": ("Energex", "Ergon"),
    "SA": ("SAPN",),
}
_PRICE = {"NSW": 1.0, "VIC": 0.9, "QLD": 0.95, "SA": 1.15}
ACCOUNT_COLUMNS = (
    "account_id", "nmi", "customer_class", "jurisdiction", "distributor", "tariff_id",
    "billing_cycle", "meter_type",
)  # fmt: skip
TARIFF_COLUMNS = (
    "tariff_id", "effective_from", "component", "band", "days", "start_time", "end_time",
    "block_kwh_per_day", "rate_cents", "unit",
)  # fmt: skip

Bools = npt.NDArray[np.bool_]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, kw_only=True)
class Accounts:
    """One element per account (arrays), in account order."""

    account_id: list[str]
    nmi: list[str]
    jurisdiction: list[str]
    distributor: list[str]
    tariff_id: list[str]
    business: Bools
    interval: Bools  #: interval meter (NEM12) else basic (NEM13)
    monthly: Bools
    interval_length: I64  #: 5, 15 or 30 (interval meters)
    solar: Bools
    controlled: Bools
    scale: F64  #: average kWh a day
    capacity_kw: F64
    cl_kwh: F64
    lag_days: I64  #: meter data stops this many days before the end
    cycle_day: I64
    cycle_offset: I64  #: quarterly cycles start 0, 1 or 2 months in

    def __len__(self) -> int:
        return len(self.nmi)


def make_accounts(rng: np.random.Generator, n: int) -> Accounts:
    """Draw ``n`` accounts: ~57 % interval meters, solar and controlled load on some homes."""
    jur = rng.choice(len(JURISDICTIONS), size=n, p=_SHARE)
    business = rng.random(n) < 0.15
    interval = rng.random(n) < 0.57
    monthly = np.where(interval, rng.random(n) < 0.6, rng.random(n) < 0.1)
    length = np.where(rng.random(n) < 0.85, 30, np.where(rng.random(n) < 0.67, 15, 5))
    solar = ~business & interval & (rng.random(n) < 0.3)
    controlled = ~business & interval & np.isin(jur, (0, 2)) & (rng.random(n) < 0.35)
    scale = np.where(business, rng.lognormal(np.log(60), 0.6, n), rng.lognormal(np.log(14), 0.4, n))
    lag = np.where(rng.random(n) < 0.2, rng.integers(1, 8, n), 0)
    kind_draw = rng.random(n)
    names = [JURISDICTIONS[j] for j in jur.tolist()]
    tariffs = []
    distributors = []
    for i, name in enumerate(names):
        distributors.append(DISTRIBUTORS[name][int(kind_draw[i] * 997) % len(DISTRIBUTORS[name])])
        if business[i]:
            kind = "BUS-TOU" if interval[i] and kind_draw[i] < 0.6 else "BUS-FLAT"
        elif interval[i]:
            kind = (
                "RES-TOU"
                if kind_draw[i] < 0.4
                else "RES-FLAT"
                if kind_draw[i] < 0.8
                else "RES-BLOCK"
            )
        else:
            kind = "RES-FLAT" if kind_draw[i] < 0.7 else "RES-BLOCK"
        tariffs.append(f"{name}-{kind}")
    return Accounts(
        account_id=[f"A{i + 1:07d}" for i in range(n)],
        nmi=[f"{_PREFIX[name]}{i + 1:09d}" for i, name in enumerate(names)],
        jurisdiction=names,
        distributor=distributors,
        tariff_id=tariffs,
        business=business,
        interval=interval,
        monthly=monthly,
        interval_length=length.astype(np.int64),
        solar=solar,
        controlled=controlled,
        scale=scale,
        capacity_kw=rng.uniform(3.0, 10.0, n),
        cl_kwh=rng.uniform(4.0, 9.0, n),
        lag_days=lag.astype(np.int64),
        cycle_day=rng.integers(1, 29, n),
        cycle_offset=rng.integers(0, 3, n),
    )


def write_accounts(path: Path, accounts: Accounts) -> None:
    with path.open("w", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(ACCOUNT_COLUMNS)
        for i in range(len(accounts)):
            out.writerow((
                accounts.account_id[i], accounts.nmi[i],
                "business" if accounts.business[i] else "residential",
                accounts.jurisdiction[i], accounts.distributor[i], accounts.tariff_id[i],
                "monthly" if accounts.monthly[i] else "quarterly",
                "interval" if accounts.interval[i] else "basic",
            ))  # fmt: skip


# (component, band, days, start, end, block kWh/day, NSW rate in cents)
_RATES: dict[str, list[tuple[str, str, str, str, str, str, float]]] = {
    "RES-FLAT": [("flat", "all", "all", "", "", "", 30.0)],
    "RES-BLOCK": [
        ("block", "1", "all", "", "", "10", 27.0),
        ("block", "2", "all", "", "", "", 33.0),
    ],
    "RES-TOU": [
        ("tou", "peak", "weekday", "14:00", "20:00", "", 45.0),
        ("tou", "shoulder", "weekday", "07:00", "14:00", "", 28.0),
        ("tou", "shoulder", "weekday", "20:00", "22:00", "", 28.0),
        ("tou", "offpeak", "weekday", "22:00", "24:00", "", 18.0),
        ("tou", "offpeak", "weekday", "00:00", "07:00", "", 18.0),
        ("tou", "shoulder", "weekend", "07:00", "22:00", "", 28.0),
        ("tou", "offpeak", "weekend", "22:00", "24:00", "", 18.0),
        ("tou", "offpeak", "weekend", "00:00", "07:00", "", 18.0),
    ],
    "BUS-FLAT": [("flat", "all", "all", "", "", "", 32.0)],
    "BUS-TOU": [
        ("tou", "peak", "weekday", "07:00", "23:00", "", 38.0),
        ("tou", "offpeak", "weekday", "23:00", "24:00", "", 20.0),
        ("tou", "offpeak", "weekday", "00:00", "07:00", "", 20.0),
        ("tou", "offpeak", "weekend", "00:00", "24:00", "", 20.0),
    ],
}
_SUPPLY = {
    "RES-FLAT": 100.0,
    "RES-BLOCK": 95.0,
    "RES-TOU": 110.0,
    "BUS-FLAT": 150.0,
    "BUS-TOU": 160.0,
}


def write_tariffs(path: Path, start: date, end: date) -> None:
    """Every tariff, a version at ``start`` and a +5 % version each 1 July inside the data."""
    versions = [(start, 1.0)]
    year = start.year if start.month < 7 else start.year + 1
    while date(year, 7, 1) <= end:
        versions.append((date(year, 7, 1), versions[-1][1] * 1.05))
        year += 1
    with path.open("w", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(TARIFF_COLUMNS)
        for jur in JURISDICTIONS:
            for kind, usage in _RATES.items():
                tariff = f"{jur}-{kind}"
                for effective, rise in versions:
                    k = _PRICE[jur] * rise
                    rows = [("supply", "all", "all", "", "", "", _SUPPLY[kind]), *usage]
                    rows += [("controlled_load", "all", "all", "", "", "", 15.0)]
                    rows += [("feed_in", "all", "all", "", "", "", 5.0 / _PRICE[jur])]
                    for comp, band, days, t0, t1, block, cents in rows:
                        unit = "c/day" if comp == "supply" else "c/kWh"
                        rate = f"{cents * k:.2f}"
                        out.writerow(
                            (
                                tariff,
                                effective.isoformat(),
                                comp,
                                band,
                                days,
                                t0,
                                t1,
                                block,
                                rate,
                                unit,
                            )
                        )
