"""One refresh of one invoice, holding no database connection while e-licensing answers.

Across processes one refresh per invoice runs at a time: the leader claims a lease row in one
statement (``elicensing.refresh_lease``), asks e-licensing holding nothing, and gives the lease
back in the short transaction that saves the answer or records the failure. Callers that find
the lease taken poll it and share the outcome. In one process at most ``upstream_concurrency``
calls are out at once (a refresh without a call slot within ``refresh_queue_s`` answers stale
``busy``), and at most ``refresh_concurrency`` connections of the refresh pool are in use at
once, each for one statement or one short transaction: the pool never waits on e-licensing.

Refreshes that run together share their statements (``groups.Grouped``): the claims of their
leases are one statement, their answers are saved by one statement (``elicensing.save_refreshes``)
sent with the read of the copies after them (one round trip), and their successes close the
circuit in one statement. A read that saw the circuit closed does
not ask the breaker again before its call. A lone refresh waits for nothing: it is a group of one.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
from prometheus_client import Counter
from psycopg_pool import AsyncConnectionPool

from tether.core import db
from tether.core.breaker import CircuitBreaker, CircuitOpen
from tether.core.errors import (
    UpstreamError,
    UpstreamInvalidPayload,
    UpstreamNotFound,
    UpstreamUnavailable,
)
from tether.core.groups import Grouped
from tether.elicensing import repository
from tether.elicensing.client import ElicensingClient
from tether.elicensing.errors import InvoiceNotFound, RefreshBusy
from tether.elicensing.models import RefreshState, RemoteInvoice, Snapshot, StaleReason
from tether.elicensing.settings import ElicensingSettings

logger = logging.getLogger(__name__)

REFRESHES = Counter(
    "tether_elicensing_refreshes_total", "Invoice refresh attempts by outcome", ["outcome"]
)
INVALID_PAYLOADS = Counter(
    "tether_elicensing_invalid_payloads_total",
    "E-licensing invoice answers rejected because they break the contract",
)


@dataclass(frozen=True, kw_only=True)
class Failure:
    reason: StaleReason
    detail: str
    error: UpstreamError | None = None  # re-raised when there is no local copy to fall back on


Outcome = tuple[Failure | None, Snapshot | None]  # how the refresh went; the copy after it
Claimed = tuple[bool, RefreshState]  # leading?; the outcome of the latest refresh
Saving = tuple[repository.Save, repository.Target]  # an answer; the read to answer after it
GROUPS = 3  # groups of claims (and of saves) one process runs at once


class Refresher:
    """Refreshes invoices for one process (the service shares one task per invoice)."""

    def __init__(
        self,
        *,
        pool: AsyncConnectionPool[Any],
        refresh_pool: AsyncConnectionPool[Any],
        client: ElicensingClient,
        breaker: CircuitBreaker,
        settings: ElicensingSettings,
        wait_s: float,
    ) -> None:
        self.pool = pool  # request pool: only the single statements of a caller that waits
        self.refresh_pool = refresh_pool  # autocommit; refresh_concurrency of its connections
        self.client = client
        self.breaker = breaker
        self.settings = settings
        self.wait_s = wait_s
        self.lease = timedelta(seconds=wait_s)  # longer than the call may take
        self._calls = asyncio.Semaphore(settings.upstream_concurrency)
        self._db = asyncio.Semaphore(settings.refresh_concurrency)
        groups = min(GROUPS, settings.refresh_concurrency)
        self._claims = Grouped(self._claim_group, parallel=groups)
        self._saves = Grouped(self._save_group, parallel=groups)
        self._successes = Grouped(self._success_group, parallel=1)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[db.Connection]:
        """A refresh-pool connection for one statement or one short transaction."""
        async with self._db, self.refresh_pool.connection() as conn:
            yield conn

    async def refresh(self, snap: Snapshot) -> Outcome:
        """Refresh (or share the refresh another process is running); busy when overloaded."""
        try:
            async with asyncio.timeout(self.settings.refresh_queue_s):
                await self._calls.acquire()
        except TimeoutError:
            REFRESHES.labels(StaleReason.BUSY.value).inc()
            detail = (
                f"{self.settings.upstream_concurrency} calls to e-licensing were already out for "
                f"{self.settings.refresh_queue_s:g} s; answered from the local copy"
            )
            return Failure(reason=StaleReason.BUSY, detail=detail, error=RefreshBusy(detail)), None
        holder = uuid.uuid4()
        number = snap.target.invoice_number
        try:
            leading, now = await self._claims.submit((number, holder))
            if leading:
                if now.stale_reason is None and now.last_refreshed not in (
                    None,
                    snap.state.last_refreshed,
                ):  # another process refreshed it since we looked: its answer is ours
                    async with self._connection() as conn:
                        await repository.release_refresh(conn, invoice_number=number, holder=holder)
                    return None, None
                return await self._lead(snap, holder)
        finally:
            self._calls.release()
        return await self._follow(snap)

    async def _follow(self, snap: Snapshot) -> Outcome:
        """Another process is refreshing it: wait for its lease to end, then share its outcome."""
        number = snap.target.invoice_number
        deadline, delay = time.monotonic() + self.wait_s, 0.01
        while time.monotonic() < deadline:
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.1)
            async with db.autocommit(self.pool) as conn:
                if not await repository.refresh_leased(conn, invoice_number=number):
                    break
        async with db.autocommit(self.pool) as conn:
            now = await repository.fetch_refresh_state(conn, invoice_number=number)
        if now.stale_reason is None and now.last_refreshed != snap.state.last_refreshed:
            return None, None
        if now.stale_reason is not None and now.last_attempt != snap.state.last_attempt:
            detail = f"a concurrent refresh of this invoice failed: {now.stale_detail}"
            return Failure(reason=now.stale_reason, detail=detail), None
        detail = "a concurrent refresh of this invoice did not finish in time"
        return Failure(reason=StaleReason.REFRESH_IN_PROGRESS, detail=detail), None

    async def _lead(self, snap: Snapshot, holder: uuid.UUID) -> Outcome:
        """One upstream call holding nothing, then one short transaction that ends the lease."""
        try:
            answer = await self._call(snap)
            if isinstance(answer, Failure):
                failure: Failure | None = answer
            else:  # it answered: the circuit's success is recorded alongside the save
                success = asyncio.ensure_future(self._successes.submit(None))
                try:
                    failure, after = await self._save(snap, holder, answer)
                finally:
                    await success
            if failure is None:
                return None, after
            async with self._connection() as conn:
                await self._record(snap, holder, failure, conn)
            return failure, None  # the caller's snapshot after it is read with others
        except Exception:  # our bug, or the database: free the invoice for the next caller now
            async with self._connection() as conn:
                await repository.release_refresh(
                    conn, invoice_number=snap.target.invoice_number, holder=holder
                )
            raise

    async def _call(self, snap: Snapshot) -> RemoteInvoice | Failure | None:
        """Ask e-licensing: its answer, why it failed, or ``None``: it no longer knows it."""
        target = snap.target
        try:
            if not snap.circuit_closed:  # the read just saw it closed: no probe is due
                await self.breaker.acquire()
            remote = await self.client.get_invoice(target.client_object_id, target.invoice_number)
        except UpstreamNotFound:
            return None
        except UpstreamError as exc:
            return await self._classify(exc, answered=False)
        return remote

    async def _save(
        self, snap: Snapshot, holder: uuid.UUID, remote: RemoteInvoice | None
    ) -> tuple[Failure | None, Snapshot | None]:
        """The answer (or the void mark) and the end of the lease, in one transaction; the
        snapshot after it (a saved answer's is read with the others saved with it)."""
        number = snap.target.invoice_number
        after = None
        try:
            if remote is None:
                async with self._connection() as conn, conn.transaction():
                    known = await repository.mark_invoice_void(
                        conn, invoice_number=number, requested_at=snap.db_now
                    )
                    if not known:
                        raise InvoiceNotFound(
                            f"e-licensing does not know invoice {number} and it was never retrieved"
                        )
                    await repository.release_refresh(conn, invoice_number=number, holder=holder)
            else:
                save = repository.Save(
                    client_object_id=snap.target.client_object_id,
                    remote=remote,
                    requested_at=snap.db_now,
                    holder=holder,
                )
                where = (snap.target.compliance_report_version_id, snap.target.invoice_type)
                after = await self._saves.submit((save, where))
        except UpstreamInvalidPayload as exc:
            return await self._classify(exc, answered=True), None
        REFRESHES.labels("ok" if remote is not None else "void").inc()
        return None, after

    async def _claim_group(self, claims: list[repository.Claim]) -> list[Claimed]:
        async with self._connection() as conn:
            return await repository.claim_refreshes(conn, claims, lease=self.lease)

    async def _save_group(self, group: list[Saving]) -> list[Snapshot | Exception | None]:
        """Answers that arrived together, saved by one statement and the snapshots after them
        read in the same round trip (if the database refuses the group, each again on its own,
        so a bad answer fails only its own refresh)."""
        async with self._connection() as conn:
            outcomes, found = await save_together(
                conn, [save for save, _ in group], [where for _, where in group]
            )
        pairs = zip(outcomes, group, strict=True)
        return [found.get(where) if outcome is None else outcome for outcome, (_, where) in pairs]

    async def _success_group(self, calls: list[None]) -> list[None]:
        """E-licensing answered these calls: one statement closes the circuit for all."""
        await self.breaker.record_success()
        return [None] * len(calls)

    async def _record(
        self, snap: Snapshot, holder: uuid.UUID, failure: Failure, conn: db.Connection
    ) -> None:
        """A failed attempt: the bookkeeping and the end of the lease, in one transaction."""
        number = snap.target.invoice_number
        REFRESHES.labels(failure.reason.value).inc()
        # an open circuit was already logged once, when it opened: no warning per read
        level = logging.INFO if failure.reason is StaleReason.CIRCUIT_OPEN else logging.WARNING
        logger.log(
            level,
            "refresh of invoice %s failed (%s): %s",
            number,
            failure.reason.value,
            failure.detail,
            extra={"action": "elicensing_refresh_failed", "reason": failure.reason.value},
        )
        async with conn.transaction():
            if failure.reason is not StaleReason.CIRCUIT_OPEN:  # not called: nothing attempted
                await repository.record_refresh_failure(
                    conn, invoice_number=number, reason=failure.reason.value, error=failure.detail
                )
            await repository.release_refresh(conn, invoice_number=number, holder=holder)

    async def _classify(self, exc: UpstreamError, *, answered: bool) -> Failure:
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
        return Failure(reason=reason, detail=exc.message, error=exc)


async def save_together(
    conn: db.Connection, saves: list[repository.Save], targets: list[repository.Target]
) -> tuple[list[Exception | None], dict[repository.Target, Snapshot]]:
    """Answers in one statement and the copies of ``targets`` after them, in one round trip;
    if the database refuses them, each on its own (a refusal, ``InvalidElicensingPayload``, or an
    error is the outcome of its answer only), then the copies read."""
    try:
        return [None] * len(saves), await repository.save_then_read(conn, saves, targets)
    except psycopg.Error as exc:  # nothing of the group was saved
        logger.info("a group of %d answers was refused (%s)", len(saves), exc)
    outcomes = [await _save_one(conn, save) for save in saves]
    return outcomes, await repository.fetch_reads(conn, targets)


async def _save_one(conn: db.Connection, save: repository.Save) -> Exception | None:
    try:
        await repository.save_refresh(
            conn,
            client_object_id=save.client_object_id,
            remote=save.remote,
            requested_at=save.requested_at,
            holder=save.holder,
        )
    except Exception as exc:  # this answer's refusal (or our bug), for its caller
        return exc
    return None
