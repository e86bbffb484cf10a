"""Use cases of the e-licensing capability: refresh-on-read of invoices, and balance writes.

No HTTP call runs inside a transaction or holds a database connection, and nothing waits for a
second request connection while it holds one: a read is one statement (reads that arrive
together share one: ``groups.Grouped``); a refresh (refresh.py)
leads through a lease row, asks e-licensing holding nothing, and saves in one short transaction
on the capability's refresh pool. Readers of one invoice share one refresh task per process (and
its snapshot afterwards); processes share it through the lease. A read without a call slot
within ``refresh_queue_s`` answers the local copy, stale ``busy``; an open circuit answers it at
once. Reads fail open (stale, with a reason); balance writes fail closed; our bugs are 500s.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from prometheus_client import Counter
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from tether.core import db
from tether.core.bootstrap import Runtime
from tether.core.breaker import CircuitBreaker, CircuitOpen
from tether.core.errors import UpstreamUnavailable
from tether.core.groups import Grouped
from tether.elicensing import repository, units
from tether.elicensing.client import ElicensingClient
from tether.elicensing.errors import InvoiceNotFound
from tether.elicensing.models import (
    InvoiceRead,
    InvoiceType,
    Snapshot,
    StaleReason,
)
from tether.elicensing.refresh import REFRESHES, Failure, Outcome, Refresher
from tether.elicensing.settings import ElicensingSettings

READS = Counter("tether_elicensing_reads_total", "Invoice reads by freshness", ["fresh"])
WRITE_SLOTS = 2  # balance writes one process runs at once (each holds one lock connection)
READ_GROUPS = 4  # groups of reads one process runs at once (each on one request connection)
# the counters every read bumps, bound once (a labels() lookup per read was ~2 us of ~60)
_SKIPPED_FRESH = REFRESHES.labels("skipped_fresh")
_CIRCUIT_OPEN = REFRESHES.labels(StaleReason.CIRCUIT_OPEN.value)
_READ_FRESH, _READ_STALE = READS.labels("true"), READS.labels("false")
CIRCUIT_OPEN_DETAIL = "e-licensing was unavailable recently; not called until it recovers"


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
        # refresh_concurrency connections for refresh statements, WRITE_SLOTS for write locks
        self.lock_pool = lock_pool
        self.client = client
        self.breaker = breaker
        self.settings = settings
        self.tz = ZoneInfo(settings.timezone)
        # a waiter gives up a little after the leader's own call must have timed out
        self.wait_s = settings.connect_timeout_s + settings.read_timeout_s + 1
        self.refresher = Refresher(
            pool=pool,
            refresh_pool=lock_pool,
            client=client,
            breaker=breaker,
            settings=settings,
            wait_s=self.wait_s,
        )
        self.write_slots = asyncio.Semaphore(WRITE_SLOTS)
        # the reads of a group share one statement; a few groups at once keep both cores busy
        self._reads = Grouped(self._read_group, parallel=READ_GROUPS)
        self._inflight: dict[str, asyncio.Task[Outcome]] = {}  # by invoice number
        self._by_target: dict[tuple[int, InvoiceType], asyncio.Task[Outcome]] = {}

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
        # a forced read answers with the copy after its refresh: this one's fees are not read
        snap = await self._snapshot(report_version_id, invoice_type, items=not force)
        if not force and snap.is_fresh(self.settings.freshness_s):
            _SKIPPED_FRESH.inc()
            return self._answer(snap, None)
        if snap.circuit_open:  # known down: answer at once, without a lock or a call
            if not snap.items_read:  # (the statement reads them when it sees it open)
                snap = await self._snapshot(report_version_id, invoice_type)
            _CIRCUIT_OPEN.inc()
            exc = CircuitOpen(CIRCUIT_OPEN_DETAIL)
            return self._answer(
                snap, Failure(reason=StaleReason.CIRCUIT_OPEN, detail=exc.message, error=exc)
            )
        failure, after = await self._refresh_shared(snap, join=join)
        if after is None or after.target != snap.target:  # not the snapshot the refresh took
            after = await self._snapshot(report_version_id, invoice_type)
        return self._answer(after, failure)

    async def _snapshot(
        self, report_version_id: int, invoice_type: InvoiceType, *, items: bool = True
    ) -> Snapshot:
        snap = await self._reads.submit(((report_version_id, invoice_type), items))
        if snap is None:
            raise InvoiceNotFound(
                f"compliance report version {report_version_id} has no "
                f"{invoice_type.value.replace('_', ' ')} invoice"
            )
        return snap

    async def _read_group(
        self, reads: list[tuple[repository.Target, bool]]
    ) -> list[Snapshot | None]:
        """Reads of (target, with its fees?); a target any of them wants the fees of has them."""
        targets = [target for target, _ in reads]
        without = {target for target, _ in reads} - {target for target, items in reads if items}
        async with db.autocommit(self.pool) as conn:  # one statement: one consistent snapshot
            found = await repository.fetch_reads(conn, targets, without_items=without)
        return [found.get(target) for target in targets]

    async def _refresh_shared(self, snap: Snapshot, *, join: bool) -> Outcome:
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

    async def _join(self, task: asyncio.Task[Outcome]) -> Outcome:
        try:
            return await asyncio.wait_for(asyncio.shield(task), self.wait_s)
        except TimeoutError:
            detail = "a concurrent refresh of this invoice did not finish in time"
            return Failure(reason=StaleReason.REFRESH_IN_PROGRESS, detail=detail), None

    def _forget(
        self, number: str, where: tuple[int, InvoiceType], task: asyncio.Task[Outcome]
    ) -> None:
        if self._inflight.get(number) is task:
            del self._inflight[number]
        if self._by_target.get(where) is task:
            del self._by_target[where]
        if not task.cancelled():
            task.exception()  # retrieved here too, in case every waiter went away

    async def _refresh_then_look(self, snap: Snapshot) -> Outcome:
        failure, after = await self.refresher.refresh(snap)
        if after is None:
            target = snap.target
            after = await self._snapshot(target.compliance_report_version_id, target.invoice_type)
        return failure, after

    def _answer(self, snap: Snapshot, failure: Failure | None) -> InvoiceRead:
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
        (_READ_FRESH if reason is None else _READ_STALE).inc()
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
    # refresh statements and balance writes' advisory locks live on connections of their own,
    # so neither ever waits for the request pool (where reads queue) while it holds one
    lock_pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        runtime.database_url,
        min_size=1,
        max_size=settings.refresh_concurrency + WRITE_SLOTS,
        reconnect_timeout=db.RECONNECT_S,  # its backoff outlasted an outage by 30 s
        open=False,
        # autocommit: a lease or a session lock is one round trip, no COMMIT
        kwargs={"row_factory": dict_row, "autocommit": True},
        name="tether-elicensing-refresh",
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
