"""Rules about accounting point data that hold before anything touches the database.

The reference system let bad periods through to fail in the database (or worse, not at all);
tether rejects them here with a reason that is recorded on the sync state.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from tether.accountingpoints.errors import InvalidAccountingPointData
from tether.accountingpoints.models import AccountingPointData, Period

GSRN = re.compile(r"^[1-9][0-9]{17}$")
GLN = re.compile(r"^[1-9][0-9]{12}$")
EIC_Y = re.compile(r"^[0-9]{2}Y[0-9A-Z\-]{13}$")
ORG_NUMBER = re.compile(r"^[1-9][0-9]{8}$")
PERSON_ID = re.compile(r"^[0-9]{11}$")


def gs1_check_digit(body: str) -> int:
    """GS1 mod-10 check digit of ``body`` (weights 3,1,3,... from the right)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def is_valid_gsrn(gsrn: str) -> bool:
    """18 digits, first non-zero, last a GS1 check digit (the whole string: a regex `$` also
    matches before a trailing newline, which then failed as a 500)."""
    return bool(GSRN.fullmatch(gsrn)) and gs1_check_digit(gsrn[:-1]) == int(gsrn[-1])


def make_gsrn(prefix: str, serial: int) -> str:
    """A valid GSRN from a numeric prefix and a serial (used by the simulator and tests)."""
    body = f"{prefix}{serial:0{17 - len(prefix)}d}"
    return body + str(gs1_check_digit(body))


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """Midnight of ``day`` in ``tz`` as an aware datetime."""
    return datetime.combine(day, time(0), tzinfo=tz)


def is_local_midnight(moment: datetime, tz: ZoneInfo) -> bool:
    local = moment.astimezone(tz)
    return local.time() == time(0) and local.utcoffset() == tz.utcoffset(local.replace(tzinfo=None))


def _check_periods(name: str, periods: Sequence[Period], tz: ZoneInfo) -> None:
    ordered = sorted(periods, key=lambda p: p.valid_from)
    for p in ordered:
        if p.valid_to is not None and p.valid_to <= p.valid_from:
            raise InvalidAccountingPointData(f"{name}: period ends before it starts")
        for bound in (p.valid_from, p.valid_to):
            if bound is not None and not is_local_midnight(bound, tz):
                raise InvalidAccountingPointData(
                    f"{name}: period bound {bound.isoformat()} is not midnight in {tz.key}"
                )
    for before, after in itertools.pairwise(ordered):
        if before.valid_to is None or before.valid_to > after.valid_from:
            raise InvalidAccountingPointData(
                f"{name}: periods starting {before.valid_from.date()} and "
                f"{after.valid_from.date()} overlap"
            )


def validate(data: AccountingPointData, tz: ZoneInfo, *, requested_gsrn: str) -> None:
    """Raise ``InvalidAccountingPointData`` unless ``data`` can be merged as it is."""
    if data.gsrn != requested_gsrn:
        raise InvalidAccountingPointData("adapter answered for another GSRN")
    if not is_valid_gsrn(data.gsrn):
        raise InvalidAccountingPointData("GSRN fails its check digit")
    for eu in data.end_users:
        if not (ORG_NUMBER.fullmatch(eu.business_id) or PERSON_ID.fullmatch(eu.business_id)):
            raise InvalidAccountingPointData("end user id is neither org number nor person id")
    for es in data.energy_suppliers:
        if not GLN.fullmatch(es.business_id):
            raise InvalidAccountingPointData(f"energy supplier {es.business_id!r} is not a GLN")
    for mga in data.metering_grid_areas:
        if not EIC_Y.fullmatch(mga.business_id):
            raise InvalidAccountingPointData(f"grid area {mga.business_id!r} is not an EIC-Y code")
    for d in data.energy_directions:
        if not d.directions or len(set(d.directions)) != len(d.directions):
            raise InvalidAccountingPointData("energy direction must list 1-2 distinct directions")
    _check_periods("end_user", data.end_users, tz)
    _check_periods("energy_supplier", data.energy_suppliers, tz)
    _check_periods("metering_grid_area", data.metering_grid_areas, tz)
    _check_periods("energy_direction", data.energy_directions, tz)


def current_end_user(data: AccountingPointData, now: datetime) -> str | None:
    """The end user whose period holds ``now``, if any."""
    for p in data.end_users:
        if p.valid_from <= now and (p.valid_to is None or p.valid_to > now):
            return p.business_id
    return None


ONE_DAY = timedelta(days=1)
