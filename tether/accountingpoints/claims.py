"""Claims that follow their worker: a lease the live worker renews, and an operator's release.

A claim lasts ``TETHER_AP_CLAIM_LEASE_S`` (45 s) unless its worker renews it; the worker does so
every third of a lease while it syncs. A dead worker's claims therefore lapse within a minute and
another worker takes them over, instead of waiting for the whole dead-sync timeout.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import timedelta
from typing import Any

from psycopg_pool import AsyncConnectionPool

from tether.accountingpoints import repository
from tether.accountingpoints.models import Claim
from tether.accountingpoints.settings import AccountingPointSettings
from tether.core import db

logger = logging.getLogger(__name__)


def lease(settings: AccountingPointSettings) -> timedelta:
    """How long a claim lasts without a heartbeat (never longer than the dead-sync timeout)."""
    return timedelta(seconds=min(settings.claim_lease_s, settings.dead_sync_timeout_s))


async def claim(
    pool: AsyncConnectionPool[Any],
    settings: AccountingPointSettings,
    *,
    limit: int,
    worker: str,
    probe: bool = False,
) -> list[Claim]:
    """Up to ``limit`` due APs claimed for ``worker``; under the circuit's ``probe`` one, marked
    so that its call is one request (retried, one probe was three calls to a failing datahub)."""
    async with db.autocommit(pool) as conn:  # one statement: atomic by itself
        due = await repository.claim_due_syncs(
            conn, limit=1 if probe else limit, dead_timeout=lease(settings), worker=worker
        )
    return [dataclasses.replace(c, probe=True) for c in due] if probe else due


async def heartbeat(
    pool: AsyncConnectionPool[Any], settings: AccountingPointSettings, worker: str
) -> int:
    """Renew every claim of ``worker``; returns how many."""
    async with db.transaction(pool) as conn:
        return await repository.heartbeat_claims(
            conn,
            worker=worker,
            lease=lease(settings),
            dead_timeout=timedelta(seconds=settings.dead_sync_timeout_s),
        )


async def keep_alive(
    pool: AsyncConnectionPool[Any], settings: AccountingPointSettings, worker: str
) -> None:
    """Renew ``worker``'s claims every third of a lease until cancelled."""
    every = lease(settings).total_seconds() / 3
    while True:
        await asyncio.sleep(every)
        try:
            await heartbeat(pool, settings, worker)
        except Exception:  # a missed beat only shortens the lease; the next one may succeed
            logger.warning("claim heartbeat failed", exc_info=True, extra={"action": "heartbeat"})


async def release(pool: AsyncConnectionPool[Any], worker: str) -> int:
    """Free every claim of a (dead) worker at once; returns how many."""
    async with db.transaction(pool) as conn:
        return await repository.release_claims(conn, worker=worker)
