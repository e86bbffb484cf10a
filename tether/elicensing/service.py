"""Use cases of the e-licensing capability: refresh-on-read of invoices, and balance writes.

The HTTP call to e-licensing never runs inside a database transaction. Concurrent readers of one
invoice share one upstream call (single-flight); an open circuit answers from the local copy at
once. Reads fail open (local copy, flagged stale with a reason); writes that depend on the balance
fail closed. Only expected upstream failures are caught: a bug of ours surfaces as a 500.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from prometheus_client import Counter
from psycopg_pool import AsyncConnectionPool

from tether.core import db, locking
from tether.core.bootstrap import Runtime
from tether.core.breaker import CircuitBreaker, CircuitOpen
from tether.core.errors import (
    Conflict,
    InvalidInput,
    UpstreamError,
    UpstreamInvalidPayload,
    UpstreamNotFound,
    UpstreamUnavailable,
)
from tether.elicensing import repository
from tether.elicensing.client import ElicensingClient
from tether.elicensing.errors import ElicensingDataStale, InvoiceNotFound
from tether.elicensing.models import (
    InvoiceRead,
    InvoiceTarget,
    InvoiceType,
    RefreshState,
    StaleReason,
)
from tether.elicensing.settings import ElicensingSettings

logger = logging.getLogger(__name__)

REFRESHES = Counter(
    "tether_elicensing_refreshes_total", "Invoice refresh attempts by outcome", ["outcome"]
)
INVALID_PAYLOADS = Counter(
    "tether_elicensing_invalid_payloads_total",
    "E-licensing invoice answers rejected because they break the contract",
)
READS = Counter("tether_elicensing_reads_total", "Invoice reads by freshness", ["fresh"])


@dataclass(frozen=True, kw_only=True)
class _Failure:
    reason: StaleReason
    detail: str
    error: UpstreamError | None = None  # re-raised when there is no local copy to fall back on


class ElicensingService:
    """Everything the API, the page and the demo do with e-licensing invoices."""

    def __init__(
        self,
        *,
        pool: AsyncConnectionPool[Any],
        client: ElicensingClient,
        breaker: CircuitBreaker,
        settings: ElicensingSettings,
    ) -> None:
        self.pool = pool
        self.client = client
        self.breaker = breaker
        self.settings = settings
        self.tz = ZoneInfo(settings.timezone)
        self.window = timedelta(seconds=settings.freshness_s)
        # a waiter gives up a little after the leader's own call must have timed out
        self.wait_s = settings.connect_timeout_s + settings.read_timeout_s + 1

    # --- the refresh-on-read wrapper ------------------------------------------------------

    async def read_invoice(
        self,
        report_version_id: int,
        invoice_type: InvoiceType = InvoiceType.OBLIGATION,
        *,
        force: bool = False,
    ) -> InvoiceRead:
        """The invoice of a report version, refreshed unless fresh enough (or forced)."""
        async with db.transaction(self.pool) as conn:
            target = await repository.fetch_invoice_target(
                conn, report_version_id=report_version_id, invoice_type=invoice_type
            )
            if target is None:
                raise InvoiceNotFound(
                    f"compliance report version {report_version_id} has no "
                    f"{invoice_type.value.replace('_', ' ')} invoice"
                )
            seen = await repository.fetch_refresh_state(conn, invoice_number=target.invoice_number)
        failure: _Failure | None = None
        if force or not self._within_window(seen):
            failure = await self._refresh_once(target, seen)
        else:
            REFRESHES.labels("skipped_fresh").inc()
        return await self._answer(target, failure)

    def _within_window(self, state: RefreshState) -> bool:
        return (
            state.last_refreshed is not None and state.db_now - state.last_refreshed < self.window
        )

    async def _refresh_once(self, target: InvoiceTarget, seen: RefreshState) -> _Failure | None:
        """Refresh, or wait for the concurrent reader that is already refreshing this invoice."""
        key = f"elicensing.invoice:{target.invoice_number}"
        async with locking.single_flight(self.pool, key, wait_s=self.wait_s) as leader:
            now = await self._refresh_state(target)
            if now.last_refreshed is not None and now.last_refreshed != seen.last_refreshed:
                return None  # someone refreshed it since we looked: theirs is our answer
            if leader:
                return await self._refresh(target)
        # we waited for a leader that failed (or did not finish in time): share its outcome
        if now.last_refresh_attempt != seen.last_refresh_attempt and now.last_refresh_error_reason:
            reason = StaleReason(now.last_refresh_error_reason)
            return _Failure(reason=reason, detail="a concurrent refresh of this invoice failed")
        return _Failure(
            reason=StaleReason.REFRESH_IN_PROGRESS,
            detail="a concurrent refresh of this invoice did not finish in time",
        )

    async def _refresh_state(self, target: InvoiceTarget) -> RefreshState:
        async with db.transaction(self.pool) as conn:
            return await repository.fetch_refresh_state(conn, invoice_number=target.invoice_number)

    async def _refresh(self, target: InvoiceTarget) -> _Failure | None:
        """One upstream call, then one transaction; a failure changes only the bookkeeping."""
        try:
            await self.breaker.acquire()
            remote = await self.client.get_invoice(target.client_object_id, target.invoice_number)
        except CircuitOpen as exc:
            failure = _Failure(reason=StaleReason.CIRCUIT_OPEN, detail=exc.message, error=exc)
        except UpstreamUnavailable as exc:
            await self.breaker.record_failure(exc.message)
            failure = _Failure(
                reason=StaleReason.UPSTREAM_UNAVAILABLE, detail=exc.message, error=exc
            )
        except UpstreamInvalidPayload as exc:
            await self.breaker.record_success()  # it answered: it is up, the data is the problem
            INVALID_PAYLOADS.inc()
            failure = _Failure(
                reason=StaleReason.UPSTREAM_INVALID_PAYLOAD, detail=exc.message, error=exc
            )
        except UpstreamNotFound:
            await self.breaker.record_success()
            return await self._void(target)
        except UpstreamError as exc:  # rejected (4xx): our request or credentials are wrong
            await self.breaker.record_success()
            failure = _Failure(reason=StaleReason.UPSTREAM_REJECTED, detail=exc.message, error=exc)
        else:
            await self.breaker.record_success()
            async with db.transaction(self.pool) as conn:
                await repository.apply_refresh(
                    conn, client_object_id=target.client_object_id, remote=remote
                )
            REFRESHES.labels("ok").inc()
            return None
        REFRESHES.labels(failure.reason.value).inc()
        # an open circuit was already logged once, when it opened: no warning per read
        level = logging.INFO if failure.reason is StaleReason.CIRCUIT_OPEN else logging.WARNING
        logger.log(
            level,
            "refresh of invoice %s failed (%s): %s",
            target.invoice_number,
            failure.reason.value,
            failure.detail,
            extra={"action": "elicensing_refresh_failed", "reason": failure.reason.value},
        )
        async with db.transaction(self.pool) as conn:
            await repository.record_refresh_failure(
                conn,
                invoice_number=target.invoice_number,
                reason=failure.reason.value,
                error=failure.detail,
            )
        return failure

    async def _void(self, target: InvoiceTarget) -> _Failure | None:
        """E-licensing no longer knows the invoice: keep our copy, flagged void."""
        async with db.transaction(self.pool) as conn:
            known = await repository.mark_invoice_void(conn, invoice_number=target.invoice_number)
        if not known:
            raise InvoiceNotFound(
                f"e-licensing does not know invoice {target.invoice_number} and it was never "
                "retrieved"
            )
        REFRESHES.labels("void").inc()
        return None

    async def _answer(self, target: InvoiceTarget, failure: _Failure | None) -> InvoiceRead:
        async with db.transaction(self.pool) as conn:
            invoice = await repository.fetch_invoice(conn, invoice_number=target.invoice_number)
        if invoice is None:
            # never retrieved, and this refresh failed: there is no copy to fall back on
            if failure is not None and failure.error is not None:
                raise failure.error
            raise UpstreamUnavailable(
                failure.detail if failure else "the invoice was never retrieved from e-licensing"
            )
        READS.labels(str(failure is None).lower()).inc()
        return InvoiceRead(
            invoice=invoice,
            data_is_fresh=failure is None,
            last_refreshed=invoice.last_refreshed,
            stale_reason=failure.reason if failure else None,
            stale_detail=failure.detail if failure else None,
        )

    # --- a write that depends on the balance ------------------------------------------------

    async def apply_compliance_units(
        self, report_version_id: int, amount: Decimal, *, comment: str | None = None
    ) -> InvoiceRead:
        """Reduce the obligation by ``amount`` (a negative adjustment), on fresh data only."""
        if amount <= 0:
            raise InvalidInput("the amount of compliance units applied must be positive")
        # two applies at once would both check the same balance and could overdraw it together
        name = f"elicensing:apply-compliance-units:{report_version_id}"
        async with locking.exclusive(self.pool, name, wait_s=self.wait_s * 2):
            return await self._apply_compliance_units(report_version_id, amount, comment)

    async def _apply_compliance_units(
        self, report_version_id: int, amount: Decimal, comment: str | None
    ) -> InvoiceRead:
        read = await self.read_invoice(report_version_id, InvoiceType.OBLIGATION, force=True)
        if not read.data_is_fresh:
            raise ElicensingDataStale()
        invoice = read.invoice
        if invoice.is_void:
            raise Conflict(f"invoice {invoice.invoice_number} is void")
        if amount > invoice.outstanding_balance:
            raise InvalidInput(
                f"{amount} exceeds the outstanding balance of {invoice.outstanding_balance}"
            )
        if not invoice.line_items:
            raise Conflict(f"invoice {invoice.invoice_number} has no fee to adjust")
        fee = invoice.line_items[0]
        adjustment = {
            "feeObjectId": fee.object_id,
            "adjustmentTotal": str(-amount),
            "amount": str(-amount),
            "date": date.today().isoformat(),
            "reason": "Compliance Units Applied",
            "type": "Adjustment",
            "comment": comment,
        }
        try:
            await self.client.adjust_fees(invoice.client_object_id, [adjustment])
        except UpstreamUnavailable as exc:
            await self.breaker.record_failure(exc.message)
            raise
        logger.info(
            "applied %s of compliance units to invoice %s",
            amount,
            invoice.invoice_number,
            extra={"action": "compliance_units_applied"},
        )
        return await self.read_invoice(report_version_id, InvoiceType.OBLIGATION, force=True)

    def display_time(self, moment: datetime | None) -> str:
        """A timestamp as people read it, in the configured time zone."""
        if moment is None:
            return "never"
        return moment.astimezone(self.tz).strftime("%Y-%m-%d %H:%M %Z")


@asynccontextmanager
async def build(runtime: Runtime) -> AsyncIterator[ElicensingService]:
    """The service for the app's lifetime: its client is closed on exit."""
    settings = runtime.settings_of(ElicensingSettings)
    client = ElicensingClient.from_settings(settings)
    breaker = CircuitBreaker(
        runtime.pool,
        "elicensing",
        failure_threshold=settings.breaker_failure_threshold,
        open_s=settings.breaker_open_s,
    )
    try:
        yield ElicensingService(
            pool=runtime.pool, client=client, breaker=breaker, settings=settings
        )
    finally:
        await client.aclose()
