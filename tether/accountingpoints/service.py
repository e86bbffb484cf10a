"""Use cases of the accounting point capability: sync, lookup, registration, events, reads."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from prometheus_client import Counter, Histogram
from psycopg_pool import AsyncConnectionPool

from tether.accountingpoints import claims, domain, pii, repository, retry
from tether.accountingpoints.client import AdapterClient, to_sync_payload
from tether.accountingpoints.errors import AccountingPointNotFound, EndUserMismatch, InvalidGsrn
from tether.accountingpoints.intake import Intake
from tether.accountingpoints.models import (
    AccountingPointData,
    Claim,
    EventsOutcome,
    LookupResult,
    SyncOutcome,
    internal_error,
)
from tether.accountingpoints.settings import AccountingPointSettings
from tether.core import db, jobs
from tether.core.bootstrap import Runtime
from tether.core.breaker import CircuitBreaker, CircuitOpen, Decision
from tether.core.errors import Busy, DataRejected, UpstreamError, UpstreamNotFound

logger = logging.getLogger(__name__)

SYNCS = Counter("tether_ap_syncs_total", "Accounting point syncs by outcome", ["outcome"])
SYNC_SECONDS = Histogram(
    "tether_ap_sync_seconds",
    "Fetch plus merge per accounting point (a batch's time divided by its size)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 6, 15),
)
EVENTS = Counter("tether_ap_events_total", "Thin change events by result", ["result"])


class AccountingPointService:
    """Everything the API, the worker and the event consumers do with accounting points."""

    def __init__(
        self,
        *,
        pool: AsyncConnectionPool[Any],
        client: AdapterClient,
        settings: AccountingPointSettings,
    ):
        self.pool = pool
        self.client = client
        self.settings = settings
        self.tz = ZoneInfo(settings.timezone)
        self.pii_key = settings.pii_key.get_secret_value().encode()
        # one circuit per datahub, shared by every process's syncs and lookups
        self.breaker = CircuitBreaker(
            pool,
            f"accounting_point_adapter {settings.adapter_url}",
            failure_threshold=settings.breaker_failure_threshold,
            open_s=settings.breaker_open_s,
            upstream="accounting_point_adapter",
        )
        self.intake = Intake(pool, retry_base=timedelta(seconds=settings.retry_base_s))
        self._inflight: dict[tuple[str, date | None], asyncio.Future[AccountingPointData]] = {}

    # --- sync -----------------------------------------------------------------------------

    def _valid_from(self, earliest_start: date | None) -> datetime:
        today = datetime.now(self.tz).date()
        return domain.local_midnight(earliest_start or today, self.tz)

    async def sync_one(
        self, claim: Claim, *, actor: str = "sync", gate: asyncio.Semaphore | None = None
    ) -> SyncOutcome:
        """Fetch outside any transaction, then merge in one; a failure changes no stored data."""
        [outcome] = await self.sync_batch([claim], actor=actor, gate=gate)
        return outcome

    async def sync_batch(
        self,
        claims: Sequence[Claim],
        *,
        actor: str = "sync",
        gate: asyncio.Semaphore | None = None,
        each: bool = False,
    ) -> list[SyncOutcome]:
        """Fetch every claimed AP concurrently and merge good answers in groups as they arrive,
        one transaction per group (``each``: each AP in its own as its fetch returns). A failed
        fetch fails only its AP; a failed group merge is retried AP by AP. One breaker verdict
        and one statement recording the failures (each with its backoff) per batch."""
        start = time.perf_counter()
        gate = gate or asyncio.Semaphore(len(claims) or 1)
        if each:
            ordered = list(await asyncio.gather(*(self._sync_each(c, gate, actor) for c in claims)))
        else:
            ordered = await self._sync_together(claims, gate, actor)
        await retry.tell_breaker(self.breaker, [o.reason for o in ordered])
        await retry.record_failures(
            self.pool,
            self.settings,
            [(c, o.reason, o.error) for c, o in zip(claims, ordered, strict=True) if not o.ok],
        )
        per_ap = (time.perf_counter() - start) / max(1, len(claims))
        for outcome in ordered:
            SYNCS.labels("ok" if outcome.ok else outcome.reason or "error").inc()
            SYNC_SECONDS.observe(per_ap)
        failed = sum(1 for o in ordered if not o.ok)
        logger.info(
            "synced %d accounting point(s), %d failed",
            len(ordered) - failed,
            failed,
            extra={"action": "syncs_done"},
        )
        return ordered

    async def _sync_together(
        self, claims: Sequence[Claim], gate: asyncio.Semaphore, actor: str
    ) -> list[SyncOutcome]:
        outcomes: dict[str, SyncOutcome] = {}
        fetches = [self._fetch(c, gate) for c in claims]
        wait_s = self.settings.merge_group_wait_s
        async for group in jobs.as_they_arrive(fetches, group_wait_s=wait_s):
            items: list[repository.BatchItem] = []
            for i, result in group:
                if isinstance(result, SyncOutcome):
                    outcomes[claims[i].gsrn] = result
                else:
                    items.append(repository.BatchItem.of(claims[i], to_sync_payload(result)))
            if items:
                outcomes.update(await self._apply_batch(items, actor=actor))
        return [outcomes[c.gsrn] for c in claims]

    async def _sync_each(self, claim: Claim, gate: asyncio.Semaphore, actor: str) -> SyncOutcome:
        result = await self._fetch(claim, gate)
        if isinstance(result, SyncOutcome):
            return result
        item = repository.BatchItem.of(claim, to_sync_payload(result))
        return (await self._apply_batch([item], actor=actor))[claim.gsrn]

    async def _fetch(
        self, claim: Claim, gate: asyncio.Semaphore
    ) -> AccountingPointData | SyncOutcome:
        """The adapter's answer, parsed and validated, or the failure it ended in."""
        try:
            async with gate:
                data = await self.client.get_accounting_point(
                    claim.gsrn, self._valid_from(claim.earliest_start), probe=claim.probe
                )
            return pii.protect(data, self.pii_key)
        except (UpstreamError, DataRejected) as exc:
            reason = retry.reason_of(exc)
            return SyncOutcome(gsrn=claim.gsrn, ok=False, reason=reason, error=exc.message)
        except Exception as exc:  # a bug: recorded as one, and the batch goes on
            logger.exception("fetch of an accounting point crashed", extra={"action": "sync_bug"})
            return internal_error(claim.gsrn, exc)

    async def _apply_batch(
        self, items: list[repository.BatchItem], *, actor: str
    ) -> dict[str, SyncOutcome]:
        accept = self.settings.unknown_party == "accept_unverified"
        # no party to add: one statement, atomic by itself (1 round trip, not BEGIN/it/COMMIT)
        try:
            async with (db.transaction if accept else db.autocommit)(self.pool) as conn:
                with db.translate_db_errors():
                    verdicts = await repository.apply_sync_batch(
                        conn,
                        items=items,
                        resync=timedelta(seconds=self.settings.resync_interval_s),
                        actor=actor,
                        accept_unknown=accept,
                    )
        except (DataRejected, Busy) as exc:
            if len(items) > 1:
                return await self._apply_each(items, actor=actor)
            gsrn, reason = items[0].gsrn, str(getattr(exc, "reason", type(exc).__name__))
            return {gsrn: SyncOutcome(gsrn=gsrn, ok=False, reason=reason, error=exc.message)}
        except Exception as exc:
            if len(items) > 1:
                return await self._apply_each(items, actor=actor)
            logger.exception("merge of an accounting point crashed", extra={"action": "sync_bug"})
            return {items[0].gsrn: internal_error(items[0].gsrn, exc)}
        return {
            v.gsrn: SyncOutcome(
                gsrn=v.gsrn,
                ok=v.outcome == "ok",
                reason=None if v.outcome == "ok" else v.outcome,
                error=v.message,
            )
            for v in verdicts
        }

    async def _apply_each(
        self, items: list[repository.BatchItem], *, actor: str
    ) -> dict[str, SyncOutcome]:
        """The fallback after a failed batch: every item in its own transaction."""
        logger.warning(
            "merge of a batch of %d failed; merging its APs one by one",
            len(items),
            extra={"action": "batch_fallback"},
        )
        outcomes: dict[str, SyncOutcome] = {}
        for item in items:
            outcomes.update(await self._apply_batch([item], actor=actor))
        return outcomes

    async def _apply(self, data: AccountingPointData, *, actor: str) -> None:
        """Merge one protected adapter answer (no claim) in one transaction, raising."""
        async with db.transaction(self.pool) as conn:
            with db.translate_db_errors():
                await repository.apply_sync(
                    conn,
                    gsrn=data.gsrn,
                    data=to_sync_payload(data),
                    started_at=None,
                    resync=timedelta(seconds=self.settings.resync_interval_s),
                    actor=actor,
                    accept_unknown=self.settings.unknown_party == "accept_unverified",
                )

    async def claim_due(self, *, limit: int, worker: str) -> list[Claim]:
        """Due APs, none while the datahub's circuit is open (no attempt is spent on it). A probe
        claims one AP: one call tells whether the datahub is back (the next claim, closed, takes
        a full batch). With nothing due it is given back unannounced, so a lookup probes."""
        try:
            decision = await self.breaker.acquire(announce=False)
        except CircuitOpen:
            return []
        probe = decision is Decision.PROBE
        due = await claims.claim(self.pool, self.settings, limit=limit, worker=worker, probe=probe)
        if probe and due:
            self.breaker.probing()
        elif probe:
            await self.breaker.release_probe()
        return due

    # --- lookup and registration ------------------------------------------------------------

    async def _fetch_now(
        self, gsrn: str, earliest_start: date | None = None
    ) -> AccountingPointData:
        """The AP from the datahub at once (no claim), person ids already pseudonymised.

        Concurrent lookups of one AP share one call, and all of them respect the sync's breaker.
        """
        key = (gsrn, earliest_start)
        running = self._inflight.get(key)
        if running is None:
            running = asyncio.ensure_future(self._fetch_guarded(gsrn, earliest_start))
            self._inflight[key] = running
            running.add_done_callback(lambda _: self._inflight.pop(key, None))
        return await asyncio.shield(running)

    async def _fetch_guarded(self, gsrn: str, earliest_start: date | None) -> AccountingPointData:
        decision = await self.breaker.acquire()  # raises CircuitOpen (503) while it is down
        valid_from, probe = self._valid_from(earliest_start), decision is Decision.PROBE
        try:
            data = await self.client.get_accounting_point(gsrn, valid_from, probe=probe)
        except UpstreamNotFound as exc:
            await self.breaker.record_success()
            raise AccountingPointNotFound(
                f"the datahub does not know accounting point {gsrn}"
            ) from exc
        except (UpstreamError, DataRejected) as exc:
            await retry.tell_breaker(self.breaker, [retry.reason_of(exc)])
            raise
        await self.breaker.record_success()
        return pii.protect(data, self.pii_key)

    async def _held(self, gsrn: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        if not domain.is_valid_gsrn(gsrn):
            raise InvalidGsrn()
        async with self.pool.connection() as conn:
            ap = await repository.get_accounting_point(conn, gsrn)
            units = [] if ap is None else await repository.list_controllable_units(conn, ap["id"])
        return ap, units

    async def lookup(
        self, *, end_user: str, gsrn: str | None = None, controllable_unit: str | None = None
    ) -> LookupResult:
        """Resolve an AP, check the end user, return AP and CUs.

        An AP tether syncs (it has a controllable unit) is checked against what is stored. Any
        other is fetched from the datahub and checked *before* anything is stored: a caller who
        is not its current end user leaves nothing behind, and what is stored of an AP without a
        controllable unit keeps no person end user.
        """
        if controllable_unit is not None:
            async with self.pool.connection() as conn:
                cu = await repository.find_controllable_unit(conn, controllable_unit)
            if cu is None:
                raise AccountingPointNotFound(f"no controllable unit {controllable_unit}")
            gsrn = str(cu["gsrn"])
        if gsrn is None:
            raise InvalidGsrn("give an accounting_point (GSRN) or a controllable_unit")
        caller = pii.pseudonym(end_user, self.pii_key)
        ap, units = await self._held(gsrn)
        if ap is not None and units and ap["last_synced_at"] is not None:
            async with self.pool.connection() as conn:
                current = await repository.current_end_user(conn, ap["id"])
        else:
            data = await self._fetch_now(gsrn)
            current = domain.current_end_user(data, datetime.now(self.tz))
            if current == caller:
                await self._apply(data if units else pii.without_persons(data), actor="lookup")
        if current is None:
            raise EndUserMismatch("the accounting point has no current end user")
        if current != caller:
            raise EndUserMismatch()
        ap, units = await self._held(gsrn)
        if ap is None:  # pragma: no cover - stored above
            raise AccountingPointNotFound()
        return LookupResult(accounting_point=ap, controllable_units=units)

    async def register_controllable_unit(
        self, *, gsrn: str, name: str, start_date: date | None = None
    ) -> dict[str, Any]:
        """Register a CU; its AP is fetched in full now unless already synced with a unit."""
        ap, units = await self._held(gsrn)
        if ap is None or not units or ap["last_synced_at"] is None:
            await self._apply(await self._fetch_now(gsrn, start_date), actor="register")
        async with db.transaction(self.pool) as conn:
            return await repository.insert_controllable_unit(
                conn, gsrn=gsrn, name=name, start_date=start_date
            )

    # --- events -------------------------------------------------------------------------------

    async def handle_changed(self, gsrns: list[str]) -> EventsOutcome:
        """Thin events: mark held APs as changed; events for others are ignored and counted."""
        wanted = sorted(set(gsrns))
        found = await self.intake.request_syncs(wanted)  # with other callers' grouped with ours
        held, ignored = [g for g in wanted if g in found], [g for g in wanted if g not in found]
        waiting = sum(1 for g in held if not found[g])
        EVENTS.labels("accepted").inc(len(held))
        EVENTS.labels("ignored").inc(len(ignored))
        logger.info(
            "received change events: %d accounting point(s) due now, %d waiting for their retry"
            " after a failed sync, %d not held (ignored)",
            len(held) - waiting,
            waiting,
            len(ignored),
            extra={"action": "events_received"},
        )
        return EventsOutcome(accepted=held, ignored=ignored)

    # --- reads --------------------------------------------------------------------------------

    async def get(
        self, gsrn: str
    ) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
        """The AP with sync state, its timelines and its controllable units."""
        async with self.pool.connection() as conn:
            ap = await _stored(conn, gsrn)
            timelines = await repository.get_timelines(conn, ap["id"])
            units = await repository.list_controllable_units(conn, ap["id"])
        return ap, timelines, units

    async def history(self, gsrn: str) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn:
            return await repository.get_history(conn, (await _stored(conn, gsrn))["id"])

    async def sync_counts(self) -> dict[str, Any]:
        async with self.pool.connection() as conn:
            return await repository.count_sync_states(conn)


async def _stored(conn: db.Connection, gsrn: str) -> dict[str, Any]:
    """A malformed GSRN is the caller's mistake (422, as in a lookup), not an AP we lack."""
    if not domain.is_valid_gsrn(gsrn):
        raise InvalidGsrn()
    if (ap := await repository.get_accounting_point(conn, gsrn)) is None:
        raise AccountingPointNotFound(f"tether holds no accounting point {gsrn}")
    return ap


@asynccontextmanager
async def build(runtime: Runtime) -> AsyncIterator[AccountingPointService]:
    """The service for one process: adapter client plus reference data in place."""
    settings = runtime.settings_of(AccountingPointSettings)
    client = AdapterClient.from_settings(settings)
    key = settings.pii_key.get_secret_value().encode()
    async with db.transaction(runtime.pool) as conn:
        await repository.upsert_reference_data(conn)
        converted = await repository.pseudonymise_end_users(
            conn, lambda business_id: pii.pseudonym(business_id, key)
        )
    if converted:
        logger.info("pseudonymised %d stored person ids", converted, extra={"action": "pii"})
    try:
        yield AccountingPointService(pool=runtime.pool, client=client, settings=settings)
    finally:
        await client.aclose()
