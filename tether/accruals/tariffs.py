"""Tariffs as arrays: every version of every tariff indexed once, so pricing is array lookups.

A version (tariff_id, effective_from) holds a supply rate (c/day), one usage structure (flat,
block steps or time-of-use bands by local half-hour and weekday/weekend), and optional controlled
load and feed-in rates (c/kWh). ``check`` rejects versions that cannot price every half-hour.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt

SLOTS = 48
I64 = npt.NDArray[np.int64]


def rate_e4(rate: Decimal) -> int:
    """A rate in 1/10,000 cents (rates carry at most 4 decimals)."""
    scaled = rate * 10_000
    if scaled != scaled.to_integral_value():
        raise ValueError(f"rate {rate} has more than 4 decimals")
    return int(scaled)


@dataclass
class Version:
    tariff_id: str
    effective_from: date
    supply_e4: int = 0
    usage: str = ""  # flat | block | tou
    flat_e4: int = 0
    blocks: list[tuple[int | None, int, str]] = field(default_factory=list)  # (Wh/day, rate, band)
    bands: list[tuple[str, int]] = field(default_factory=list)  # (band, rate)
    tou: npt.NDArray[np.int16] = field(default_factory=lambda: np.full((2, SLOTS), -1, np.int16))
    controlled_e4: int | None = None
    feed_in_e4: int | None = None
    problems: list[str] = field(default_factory=list)

    def add(self, row: Mapping[str, Any]) -> None:
        comp, rate = row["component"], rate_e4(row["rate_cents"])
        if comp == "supply":
            self.supply_e4 = rate
        elif comp == "controlled_load":
            self.controlled_e4 = rate
        elif comp == "feed_in":
            self.feed_in_e4 = rate
        else:
            if self.usage and self.usage != comp:
                self.problems.append(f"mixes {self.usage} and {comp} usage rates")
            self.usage = comp
            if comp == "flat":
                self.flat_e4 = rate
            elif comp == "block":
                limit = row["block_kwh_per_day"]
                wh = None if limit is None else int(Decimal(limit) * 1000)
                self.blocks.append((wh, rate, row["band"]))
            else:
                self._add_tou(row, rate)

    def _add_tou(self, row: Mapping[str, Any], rate: int) -> None:
        names = [b for b, _ in self.bands]
        if row["band"] not in names:
            self.bands.append((row["band"], rate))
            names.append(row["band"])
        idx = names.index(row["band"])
        lo, hi = int(row["start_slot"]), int(row["end_slot"])
        for weekend in (0, 1):
            if row["days"] == ("weekday", "weekend")[1 - weekend]:
                continue
            part = self.tou[weekend, lo:hi]
            if (part >= 0).any():
                self.problems.append(f"tou band {row['band']} overlaps another band")
            part[:] = idx

    def check(self) -> list[str]:
        problems = list(self.problems)
        if not self.usage:
            problems.append("has no usage rate (flat, block or tou)")
        if self.usage == "tou" and (self.tou < 0).any():
            problems.append("tou bands do not cover every half-hour of weekdays and weekends")
        if self.usage == "block":
            self.blocks.sort(key=lambda b: (b[0] is None, b[0] or 0))
            if self.blocks[-1][0] is not None:
                problems.append("the last block step needs an empty block_kwh_per_day")
        return problems


@dataclass
class TariffBook:
    """Every version, in (tariff_id, effective_from) order; ``of`` finds a day's version."""

    versions: list[Version]
    starts: dict[str, tuple[npt.NDArray[np.datetime64], I64]]

    def of(self, tariff_id: str, days: npt.NDArray[np.datetime64]) -> I64:
        """Version index per day (-1 before the tariff's first version or unknown tariff)."""
        if tariff_id not in self.starts:
            return np.full(days.shape, -1, np.int64)
        starts, idx = self.starts[tariff_id]
        pos = np.searchsorted(starts, days, side="right") - 1
        return np.where(pos >= 0, idx[np.maximum(pos, 0)], -1)

    def problems(self, tariff_id: str) -> list[str]:
        if tariff_id not in self.starts:
            return [f"tariff {tariff_id} is not loaded"]
        return [
            f"tariff {v.tariff_id} from {v.effective_from}: {p}"
            for v in self.versions
            if v.tariff_id == tariff_id
            for p in v.check()
        ]


def build(rows: Iterable[Mapping[str, Any]]) -> TariffBook:
    """Rows of acc.tariff_rate (any order) as a book."""
    by_key: dict[tuple[str, date], Version] = {}
    for row in rows:
        key = (row["tariff_id"], row["effective_from"])
        version = by_key.setdefault(key, Version(tariff_id=key[0], effective_from=key[1]))
        try:
            version.add(row)
        except ValueError as exc:
            version.problems.append(str(exc))
    versions = [by_key[k] for k in sorted(by_key)]
    grouped: dict[str, list[int]] = {}
    for i, v in enumerate(versions):
        grouped.setdefault(v.tariff_id, []).append(i)
    starts = {
        t: (
            np.array([versions[i].effective_from for i in idx], "datetime64[D]"),
            np.array(idx, np.int64),
        )
        for t, idx in grouped.items()
    }
    return TariffBook(versions=versions, starts=starts)
