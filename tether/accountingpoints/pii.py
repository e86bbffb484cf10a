"""Personal ids never reach the database in clear: a person's national id becomes a keyed hash.

Organisation numbers (9 digits) are public and stay readable. A person id (11 digits) is replaced
by ``hmac:`` and its HMAC-SHA-256 under ``TETHER_AP_PII_KEY`` before an adapter answer is merged,
and a lookup compares the caller's id by the same hash. Without the key the stored value cannot be
turned back into the id by trying every birth date (a plain hash could be). The API shows it
masked; the history tables refer to end users by row id, so they hold no id in clear either.
Changing the key makes stored end users unknown until their APs are synced again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac

from tether.accountingpoints.domain import PERSON_ID
from tether.accountingpoints.models import AccountingPointData

PREFIX = "hmac:"
MASK = "*" * 11


def pseudonym(business_id: str, key: bytes) -> str:
    """What tether stores for an end user id: a person id hashed, anything else as it is."""
    if not PERSON_ID.fullmatch(business_id):
        return business_id
    return PREFIX + hmac.new(key, business_id.encode(), hashlib.sha256).hexdigest()


def is_personal(stored: str) -> bool:
    return stored.startswith(PREFIX)


def masked(stored: str | None) -> str | None:
    """How the API shows a stored end user id: persons masked, organisations readable."""
    if stored is None:
        return None
    return MASK if is_personal(stored) else stored


def protect(data: AccountingPointData, key: bytes) -> AccountingPointData:
    """The answer with every person id replaced by its pseudonym (what may be stored)."""
    users = tuple(
        dataclasses.replace(p, business_id=pseudonym(p.business_id, key)) for p in data.end_users
    )
    return dataclasses.replace(data, end_users=users)


def without_persons(data: AccountingPointData) -> AccountingPointData:
    """The answer without person end users: what an AP with no controllable unit keeps."""
    users = tuple(p for p in data.end_users if not is_personal(p.business_id))
    return dataclasses.replace(data, end_users=users)
