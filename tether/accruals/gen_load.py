"""The generator's load model: daily levels, half-hour shapes, solar and controlled load.

Everything is an array over (accounts, days[, intervals]) so 20,000 NMIs x 13 months is a few
numpy calls per chunk, not a Python loop per interval. Energy is integer Wh from here on, so
written files, day totals and invoices agree exactly.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

_HOURS = (np.arange(48) + 0.5) / 2  # mid-point of each half hour, market time


def _bump(centre: float, width: float) -> F64:
    out: F64 = np.exp(-0.5 * ((_HOURS - centre) / width) ** 2)
    return out


def _normalised(shape: F64) -> F64:
    out: F64 = shape / shape.sum()
    return out


#: share of a day's energy in each half hour
RESIDENTIAL = _normalised(0.35 + 0.9 * _bump(7.5, 1.2) + 1.6 * _bump(19.0, 2.0))
BUSINESS = _normalised(0.25 + 1.5 * ((_HOURS > 7.5) & (_HOURS < 18.5)) + 0.4 * _bump(12.5, 3.0))
SUN = np.clip(np.sin(np.pi * (_HOURS - 6.0) / 13.0), 0.0, None) ** 1.5
#: controlled load runs overnight (22:00-07:00)
OFF_PEAK = ((_HOURS >= 22.0) | (_HOURS < 7.0)).astype(np.float64)
OFF_PEAK /= OFF_PEAK.sum()


def season(day_of_year: I64) -> F64:
    """Demand factor: peaks in the southern summer (January) and winter (July)."""
    out: F64 = 1.0 + 0.18 * np.cos(4 * np.pi * (day_of_year - 20) / 365.25)
    return out


def sun_season(day_of_year: I64) -> F64:
    """Solar yield factor: long summer days, short winter days."""
    out: F64 = 0.75 + 0.25 * np.cos(2 * np.pi * (day_of_year - 355) / 365.25)
    return out


def daily_level(
    rng: np.random.Generator,
    scale: F64,
    business: npt.NDArray[np.bool_],
    days: npt.NDArray[np.datetime64],
) -> F64:
    """kWh per account and day: account scale x season x weekday x day-to-day noise."""
    doy = (days - days.astype("datetime64[Y]")).astype(np.int64) + 1
    weekday = ((days.astype(np.int64) + 3) % 7) < 5  # 1970-01-01 was a Thursday
    week = np.where(business[:, None], np.where(weekday, 1.0, 0.45)[None, :], 1.0)
    week = np.where(~business[:, None], np.where(weekday, 1.0, 1.12)[None, :], week)
    noise = rng.lognormal(0.0, 0.15, size=(scale.size, days.size))
    out: F64 = scale[:, None] * season(doy)[None, :] * week * noise
    return out


def half_hours(
    rng: np.random.Generator, level: F64, business: npt.NDArray[np.bool_], *, noisy: bool = True
) -> F64:
    """kWh per account, day and half hour from the daily levels and the class shapes."""
    shape = np.where(business[:, None], BUSINESS[None, :], RESIDENTIAL[None, :])
    out: F64 = level[:, :, None] * shape[:, None, :]
    if noisy:
        out = out * rng.lognormal(0.0, 0.3, size=out.shape)
    return out


def solar(rng: np.random.Generator, capacity_kw: F64, days: npt.NDArray[np.datetime64]) -> F64:
    """kWh generated per account, day and half hour (clear-sky shape x clouds)."""
    doy = (days - days.astype("datetime64[Y]")).astype(np.int64) + 1
    clouds = rng.uniform(0.25, 1.0, size=(capacity_kw.size, days.size))
    daily = capacity_kw[:, None] * sun_season(doy)[None, :] * clouds * 0.5
    out: F64 = daily[:, :, None] * SUN[None, None, :]
    return out


def controlled(rng: np.random.Generator, kwh_per_day: F64, days: npt.NDArray[np.datetime64]) -> F64:
    """kWh of the controlled-load (hot water) channel per account, day and half hour."""
    doy = (days - days.astype("datetime64[Y]")).astype(np.int64) + 1
    winter = 1.0 + 0.3 * np.cos(2 * np.pi * (doy - 196) / 365.25)
    daily = (
        kwh_per_day[:, None] * winter[None, :] * rng.lognormal(0, 0.2, (kwh_per_day.size, doy.size))
    )
    out: F64 = daily[:, :, None] * OFF_PEAK[None, None, :]
    return out


def to_wh(kwh: F64) -> I64:
    """Whole Wh (the files carry kWh with three decimals)."""
    out: I64 = np.rint(kwh * 1000.0).astype(np.int64)
    return out


def split(rng: np.random.Generator, wh: I64, parts: int) -> I64:
    """Each half hour split into ``parts`` shorter intervals that sum back exactly."""
    if parts == 1:
        return wh
    weights = rng.uniform(0.5, 1.5, size=(*wh.shape, parts))
    weights /= weights.sum(axis=-1, keepdims=True)
    pieces = np.floor(wh[..., None] * weights).astype(np.int64)
    pieces[..., -1] += wh - pieces.sum(axis=-1)
    out: I64 = pieces.reshape(*wh.shape[:-1], wh.shape[-1] * parts)
    return out
