"""Use cases of the e-licensing capability: refresh-on-read of invoices, and balance writes.

No HTTP call runs inside a transaction, and nothing waits for a second request connection while
it holds one: a read is one statement; a refresh holds its advisory lock, and does its own
statements, on a connection of the capability's lock pool. Readers of one invoice share one
refresh task per process (and its snapshot afterwards); processes share it through the lock.
At most ``refresh_concurrency`` refreshes run at once; a read without a slot within
``refresh_queue_s`` answers the local copy, stale ``busy``; an open circuit answers it at once.
Reads fail open (stale, with a reason); balance writes fail closed; our bugs are 500s.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from prometheus_client import Counter
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from tether.core import db, locking
from tether.core.bootstrap import Runtime
from tether.core.breaker import CircuitBreaker, CircuitOpen
from tether.core.errors import (
    UpstreamError,
    UpstreamInvalidPayload,
    UpstreamNotFound,
    UpstreamUnavailable,
)
from tether.elicensing import repository, units
from tether.elicensing.client import ElicensingClient
from tether.elicensing.errors import (
    InvoiceNotFound,
    RefreshBusy,
)
from tether.elicensing.models import (
    InvoiceRead,
    InvoiceType,
    Snapshot,
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
WRITE_SLOTS = 2  # balance writes one process runs at once (each holds one lock connection)


@dataclass(frozen=True, kw_only=True)
class _Failure:
    reason: StaleReason
    detail: str
    error: UpstreamError | None = None  # re-raised when there is no local copy to fall back on


_Outcome = tuple[_Failure | None, Snapshot | None]  # how the refresh went; the copy after it


class ElicensingService:
    """Everything the API, the page and the demo do with e-licensing invoices."""

    def __init__(
        self,
        *,
        pool: AsyncConnectionPool[Any],
        lock_pool: AsyncConnectionPool[Any],
        client: ElicensingClient,
        breaker: CircuitBreaker,
        settings: ElicensingSettings,
    ) -> None:
        self.pool = pool
        self.lock_pool = lock_pool  # refresh_concurrency + WRITE_SLOTS connections
        self.client = client
        self.breaker = breaker
        self.settings = settings
        self.tz = ZoneInfo(settings.timezone)
        # a waiter gives up a little after the leader's own call must have timed out
        self.wait_s = settings.connect_timeout_s + settings.read_timeout_s + 1
        self._slots = asyncio.Semaphore(settings.refresh_concurrency)
        self.write_slots = asyncio.Semaphore(WRITE_SLOTS)
        self._inflight: dict[str, asyncio.Task[_Outcome]] = {}  # by invoice number
        self._by_target: dict[tuple[int, InvoiceType], asyncio.Task[_Outcome]] = {}

    # --- the refresh-on-read wrapper ------------------------------------------------------

    async def read_invoice(
        self,
        report_version_id: int,
        invoice_type: InvoiceType = InvoiceType.OBLIGATION,
        *,
        force: bool = False,
    ) -> InvoiceRead:
        """The invoice of a report version, refreshed unless fresh enough (or forced)."""
        return await self._read(report_version_id, invoice_type, force=force, join=True)

    async def _read(
        self, report_version_id: int, invoice_type: InvoiceType, *, force: bool, join: bool
    ) -> InvoiceRead:
        running = self._by_target.get((report_version_id, invoice_type)) if join else None
        if force and running is not None:  # a refresh of it is under way: its answer is ours
            failure, after = await self._join(running)
            after = after or await self._snapshot(report_version_id, invoice_type)
            return self._answer(after, failure)
        snap = await self._snapshot(report_version_id, invoice_type)
        if not force and snap.is_fresh(self.settings.freshness_s):
            REFRESHES.labels("skipped_fresh").inc()
            return self._answer(snap, None)
        if snap.circuit_open:  # known down: answer at once, without a lock or a call
            REFRESHES.labels(StaleReason.CIRCUIT_OPEN.value).inc()
            exc = CircuitOpen("e-licensing was unavailable recently; not called until it recovers")
            return self._answer(
                snap, _Failure(reason=StaleReason.CIRCUIT_OPEN, detail=exc.message, error=exc)
            )
        failure, after = await self._refresh_shared(snap, join=join)
        if after is None or after.target != snap.target:  # not the snapshot the refresh took
            after = await self._snapshot(report_version_id, invoice_type)
        return self._answer(after, failure)

    async def _snapshot(self, report_version_id: int, invoice_type: InvoiceType) -> Snapshot:
        async with db.autocommit(self.pool) as conn:  # one statement: one consistent snapshot
            snap = await repository.fetch_read(
                conn, report_version_id=report_version_id, invoice_type=invoice_type
            )
        if snap is None:
            raise InvoiceNotFound(
                f"compliance report version {report_version_id} has no "
                f"{invoice_type.value.replace('_', ' ')} invoice"
            )
        return snap

    async def _refresh_shared(self, snap: Snapshot, *, join: bool) -> _Outcome:
        """Start a refresh, or join the one this process is already running for the invoice.

        The refresh task also takes the snapshot after it, which every reader that joined it
        answers with: a hundred readers of one invoice cost one refresh and one statement each.
        """
        number = snap.target.invoice_number
        task = self._inflight.get(number) if join else None
        if task is not None:
            return await self._join(task)
        task = asyncio.create_task(self._refresh_then_look(snap))
        where = (snap.target.compliance_report_version_id, snap.target.invoice_type)
        self._inflight[number] = task
        self._by_target[where] = task
        task.add_done_callback(lambda done: self._forget(number, where, done))
        return await asyncio.shield(task)

    async def _join(self, task: asyncio.Task[_Outcome]) -> _Outcome:
        try:
            return await asyncio.wait_for(asyncio.shield(task), self.wait_s)
        except TimeoutError:
            detail = "a concurrent refresh of this invoice did not finish in time"
            return _Failure(reason=StaleReason.REFRESH_IN_PROGRESS, detail=detail), None

    def _forget(
        self, number: str, where: tuple[int, InvoiceType], task: asyncio.Task[_Outcome]
    ) -> None:
        if self._inflight.get(number) is task:
            del self._inflight[number]
        if self._by_target.get(where) is task:
            del self._by_target[where]
        if not task.cancelled():
            task.exception()  # retrieved here too, in case every waiter went away

    async def _refresh_then_look(self, snap: Snapshot) -> _Outcome:
        failure, after = await self._refresh_in_slot(snap)
        if after is None:
            target = snap.target
            after = await self._snapshot(target.compliance_report_version_id, target.invoice_type)
        return failure, after

    async def _refresh_in_slot(self, snap: Snapshot) -> _Outcome:
        """Refresh within one of ``refresh_concurrency`` slots, or answer busy after the wait."""
        try:
            async with asyncio.timeout(self.settings.refresh_queue_s):
                await self._slots.acquire()
        except TimeoutError:
            REFRESHES.labels(StaleReason.BUSY.value).inc()
            detail = (
                f"{self.settings.refresh_concurrency} refreshes were already running for "
                f"{self.settings.refresh_queue_s:g} s; answered from the local copy"
            )
            return _Failure(reason=StaleReason.BUSY, detail=detail, error=RefreshBusy(detail)), None
        try:
            return await self._refresh_once(snap)
        finally:
            self._slots.release()

    async def _refresh_once(self, snap: Snapshot) -> _Outcome:
        """Refresh, or wait for the process that is already refreshing this invoice.

        The leader does its bookkeeping, the save and the look afterwards on the connection that
        holds its lock: while it holds the lock it never queues for a request connection.
        """
        target = snap.target
        key = f"elicensing.invoice:{target.invoice_number}"
        async with locking.leading(self.lock_pool, key, wait_s=self.wait_s) as conn:
            if conn is not None:
                now = await repository.fetch_refresh_state(
                    conn, invoice_number=target.invoice_number
                )
                failure = None
                if now.stale_reason is not None or now.last_refreshed in (
                    None,
                    snap.state.last_refreshed,
                ):  # else another process refreshed it since we looked: its answer is ours
                    failure = await self._refresh(snap, conn)
                after = await repository.fetch_read(
                    conn,
                    report_version_id=target.compliance_report_version_id,
                    invoice_type=target.invoice_type,
                )
                return failure, after
        # we waited for another process's refresh: share its outcome
        async with db.autocommit(self.pool) as conn:
            now = await repository.fetch_refresh_state(conn, invoice_number=target.invoice_number)
        if now.stale_reason is None and now.last_refreshed != snap.state.last_refreshed:
            return None, None
        if now.stale_reason is not None and now.last_attempt != snap.state.last_attempt:
            detail = f"a concurrent refresh of this invoice failed: {now.stale_detail}"
            return _Failure(reason=now.stale_reason, detail=detail), None
        detail = "a concurrent refresh of this invoice did not finish in time"
        return _Failure(reason=StaleReason.REFRESH_IN_PROGRESS, detail=detail), None

    async def _refresh(self, snap: Snapshot, conn: db.Connection) -> _Failure | None:
        """One upstream call, then one transaction; a failure changes only the bookkeeping."""
        target = snap.target
        answered = False
        try:
            await self.breaker.acquire()
            remote = await self.client.get_invoice(target.client_object_id, target.invoice_number)
            answered = True
            await self.breaker.record_success()
            async with conn.transaction():
                await repository.apply_refresh(
                    conn,
                    client_object_id=target.client_object_id,
                    remote=remote,
                    requested_at=snap.db_now,
                )
        except UpstreamNotFound:
            await self.breaker.record_success()
            return await self._void(snap, conn)
        except UpstreamError as exc:
            failure = await self._classify(exc, answered=answered)
        else:
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
        if failure.reason is not StaleReason.CIRCUIT_OPEN:  # not called: nothing was attempted
            async with conn.transaction():
                await repository.record_refresh_failure(
                    conn,
                    invoice_number=target.invoice_number,
                    reason=failure.reason.value,
                    error=failure.detail,
                )
        return failure

    async def _classify(self, exc: UpstreamError, *, answered: bool) -> _Failure:
        """Why a refresh failed; unavailability counts against the circuit, answers close it."""
        if isinstance(exc, CircuitOpen):
            reason = StaleReason.CIRCUIT_OPEN
        elif isinstance(exc, UpstreamUnavailable):
            await self.breaker.record_failure(exc.message)
            reason = StaleReason.UPSTREAM_UNAVAILABLE
        elif isinstance(exc, UpstreamInvalidPayload):
            if not answered:  # it answered, so it is up: the data is the problem
                await self.breaker.record_success()
            INVALID_PAYLOADS.inc()
            reason = StaleReason.UPSTREAM_INVALID_PAYLOAD
        else:  # rejected (4xx): our request or credentials are wrong
            await self.breaker.record_success()
            reason = StaleReason.UPSTREAM_REJECTED
        return _Failure(reason=reason, detail=exc.message, error=exc)

    async def _void(self, snap: Snapshot, conn: db.Connection) -> _Failure | None:
        """E-licensing no longer knows the invoice: keep our copy, flagged void."""
        number = snap.target.invoice_number
        async with conn.transaction():
            known = await repository.mark_invoice_void(
                conn, invoice_number=number, requested_at=snap.db_now
            )
        if not known:
            raise InvoiceNotFound(
                f"e-licensing does not know invoice {number} and it was never retrieved"
            )
        REFRESHES.labels("void").inc()
        return None

    def _answer(self, snap: Snapshot, failure: _Failure | None) -> InvoiceRead:
        invoice = snap.invoice
        if invoice is None:
            # never retrieved, and this refresh failed: there is no copy to fall back on
            if failure is not None and failure.error is not None:
                raise failure.error
            raise UpstreamUnavailable(
                failure.detail if failure else "the invoice was never retrieved from e-licensing"
            )
        reason = failure.reason if failure else snap.state.stale_reason
        detail = failure.detail if failure else snap.state.stale_detail
        READS.labels(str(reason is None).lower()).inc()
        return InvoiceRead(
            invoice=invoice,
            data_is_fresh=reason is None,
            last_refreshed=invoice.last_refreshed,
            stale_reason=reason,
            stale_detail=detail,
            stale_since=None if reason is None else (snap.stale_since or invoice.last_refreshed),
        )

    # --- a write that depends on the balance ------------------------------------------------

    async def apply_compliance_units(
        self, report_version_id: int, amount: Decimal, *, comment: str | None = None
    ) -> InvoiceRead:
        """Reduce the obligation by ``amount`` (a negative adjustment), on fresh data only."""
        return await units.apply_compliance_units(self, report_version_id, amount, comment=comment)

    async def read_after_write(self, report_version_id: int) -> InvoiceRead:
        """A refresh of its own (never joining one that began before the write)."""
        return await self._read(report_version_id, InvoiceType.OBLIGATION, force=True, join=False)

    async def mark_changed(self, invoice_number: str, detail: str) -> None:
        """E-licensing is being (or was) changed: the copy is stale until a later refresh."""
        async with db.transaction(self.pool) as conn:
            await repository.mark_upstream_changed(
                conn, invoice_number=invoice_number, detail=detail
            )

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
        repository.CIRCUIT,
        failure_threshold=settings.breaker_failure_threshold,
        open_s=settings.breaker_open_s,
    )
    # advisory locks live on their own connections, so a refresh holding one never waits for
    # the request pool (where reads queue) while it holds it
    lock_pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        runtime.database_url,
        min_size=1,
        max_size=settings.refresh_concurrency + WRITE_SLOTS,
        open=False,
        # autocommit: taking and giving back a session lock is one round trip, no COMMIT
        kwargs={"row_factory": dict_row, "autocommit": True},
        name="tether-elicensing-locks",
    )
    await lock_pool.open(wait=True, timeout=30)
    try:
        yield ElicensingService(
            pool=runtime.pool,
            lock_pool=lock_pool,
            client=client,
            breaker=breaker,
            settings=settings,
        )
    finally:
        await client.aclose()
        await lock_pool.close()
