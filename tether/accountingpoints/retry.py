"""When a failed sync is tried again: each claimed AP's backoff, recorded in one statement."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from psycopg_pool import AsyncConnectionPool

from tether.accountingpoints import repository
from tether.accountingpoints.models import Claim
from tether.accountingpoints.settings import AccountingPointSettings
from tether.core import db, jobs
from tether.core.errors import Busy

logger = logging.getLogger(__name__)

JITTER = 0.5
"""Share of every retry delay drawn at random: APs that failed together retry apart."""


async def record_failures(
    pool: AsyncConnectionPool[Any],
    settings: AccountingPointSettings,
    failed: Sequence[tuple[Claim, str | None, str | None]],
) -> None:
    """Record each failed claimed sync (claim, reason, error) with its backoff.

    Lookups (no claim) record nothing; a lost claim belongs to another worker now.
    """
    failures = []
    for claim, reason, error in failed:
        if reason == "claim_lost":
            logger.info(
                "sync of %s dropped: %s", claim.gsrn, error, extra={"action": "sync_claim_lost"}
            )
            continue
        retry_after = jobs.backoff(
            claim.attempts, base_s=settings.retry_base_s, max_s=settings.retry_max_s, jitter=JITTER
        )
        logger.warning(
            "sync of %s failed (%s): %s; retry in %.0f s",
            claim.gsrn,
            reason,
            error,
            retry_after,
            extra={"action": "sync_failed", "reason": reason},
        )
        if claim.started_at is not None:
            failures.append(
                repository.Failure(
                    gsrn=claim.gsrn,
                    started_at=claim.started_at,
                    error=(error or "")[:1000],
                    reason=reason or "error",
                    retry_after=timedelta(seconds=retry_after),
                )
            )
    if not failures:
        return
    try:
        async with db.transaction(pool) as conn:
            with db.translate_db_errors():
                await repository.record_sync_failures(conn, failures)
    except Busy:
        # their claims expire by themselves after the dead-sync timeout and are retried then
        logger.warning(
            "could not record %d failed syncs: rows locked by another transaction",
            len(failures),
            extra={"action": "sync_failures_not_recorded"},
        )
