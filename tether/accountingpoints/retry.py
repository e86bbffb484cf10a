"""When a failed sync is tried again: each claimed AP's backoff, recorded in one statement."""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import httpx
from psycopg_pool import AsyncConnectionPool

from tether.accountingpoints import repository
from tether.accountingpoints.models import Claim
from tether.accountingpoints.settings import AccountingPointSettings
from tether.core import db, jobs
from tether.core.breaker import CircuitBreaker, CircuitOpen
from tether.core.errors import (
    Busy,
    DataRejected,
    UpstreamError,
    UpstreamNotFound,
    UpstreamUnavailable,
)

logger = logging.getLogger(__name__)

JITTER = 0.5
"""Share of every retry delay drawn at random: APs that failed together retry apart."""

GONE = "gone"
"""The reason of an AP the datahub answered 404 for several times running: checked rarely."""

_STATUS = re.compile(r"HTTP (\d{3})")


def reason_of(exc: UpstreamError | DataRejected) -> str:
    """A reason an operator can act on: timeout, refused connection, 5xx and 404 apart."""
    if isinstance(exc, UpstreamNotFound):
        return "upstream_not_found"
    if isinstance(exc, UpstreamUnavailable) and not isinstance(exc, CircuitOpen):
        cause = exc.__cause__
        if isinstance(cause, httpx.TimeoutException):
            return (
                "upstream_refused" if "could not be reached" in exc.message else "upstream_timeout"
            )
        if isinstance(cause, httpx.TransportError):
            return "upstream_refused"
        status = _STATUS.search(exc.message)
        if status is not None and status.group(1).startswith("5"):
            return "upstream_5xx"
    return str(getattr(exc, "reason", type(exc).__name__))


UNAVAILABLE = frozenset(
    {"upstream_timeout", "upstream_refused", "upstream_5xx", "upstream_unavailable"}
)
"""Reasons that mean the datahub is down (they count for the circuit breaker)."""


async def tell_breaker(breaker: CircuitBreaker, reasons: Sequence[str | None]) -> None:
    """One verdict per batch or lookup: down if every call found it down, else up."""
    if not reasons or "circuit_open" in reasons:
        return
    if all(r in UNAVAILABLE for r in reasons):
        await breaker.record_failure(f"{len(reasons)} call(s) found the datahub unavailable")
    else:
        await breaker.record_success()


def _delay(
    settings: AccountingPointSettings, claim: Claim, reason: str | None
) -> tuple[str | None, float]:
    """The reason to record and the delay before the next attempt (always jittered)."""
    if (
        reason == "upstream_not_found"
        and claim.attempts >= settings.gone_after_404s
        and claim.last_reason in ("upstream_not_found", GONE)
    ):
        return GONE, settings.gone_recheck_s * (1.0 - JITTER * random.random())
    return reason, jobs.backoff(
        claim.attempts, base_s=settings.retry_base_s, max_s=settings.retry_max_s, jitter=JITTER
    )


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
        reason, retry_after = _delay(settings, claim, reason)
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
