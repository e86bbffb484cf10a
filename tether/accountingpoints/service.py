"""Use cases of the accounting point capability: sync, lookup, registration, events, reads."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from prometheus_client import Counter, Histogram
from psycopg_pool import AsyncConnectionPool

from tether.accountingpoints import domain, repository
from tether.accountingpoints.client import AdapterClient, to_sync_payload
from tether.accountingpoints.errors import (
    AccountingPointNotFound,
    EndUserMismatch,
    InvalidGsrn,
)
from tether.accountingpoints.models import AccountingPointData
from tether.core import db
from tether.core.bootstrap import Runtime
from tether.core.errors import Busy, DataRejected, UpstreamError, UpstreamNotFound
from tether.core.events import CloudEvent
from tether.core.settings import Settings

logger = logging.getLogger(__name__)

SYNCS = Counter("tether_ap_syncs_total", "Accounting point syncs by outcome", ["outcome"])
SYNC_SECONDS = Histogram(
    "tether_ap_sync_seconds",
    "Fetch plus merge of one accounting point",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 6, 15),
)
EVENTS = Counter("tether_ap_events_total", "Thin change events by result", ["result"])


@dataclass(frozen=True, kw_only=True)
class SyncOutcome:
    gsrn: str
    ok: bool
    reason: str | None = None
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class EventsOutcome:
    accepted: list[str]
    ignored: list[str]


@dataclass(frozen=True, kw_only=True)
class LookupResult:
    accounting_point: dict[str, Any]
    controllable_units: list[dict[str, Any]]


class AccountingPointService:
    """Everything the API, the worker and the event consumers do with accounting points."""

    def __init__(
        self, *, pool: AsyncConnectionPool[Any], client: AdapterClient, settings: Settings
    ):
        self.pool = pool
        self.client = client
        self.settings = settings
        self.tz = ZoneInfo(settings.timezone)

    # --- sync -----------------------------------------------------------------------------

    def _valid_from(self, earliest_start: date | None) -> datetime:
        today = datetime.now(self.tz).date()
        return domain.local_midnight(earliest_start or today, self.tz)

    async def sync_one(
        self,
        gsrn: str,
        *,
        started_at: datetime | None,
        earliest_start: date | None,
        attempts: int = 1,
        actor: str = "sync",
    ) -> SyncOutcome:
        """Fetch outside any transaction, then merge in one; a failure changes no stored data."""
        start = time.perf_counter()
        try:
            data = await self.client.get_accounting_point(gsrn, self._valid_from(earliest_start))
            await self._apply(data, started_at=started_at, actor=actor)
        except (UpstreamError, DataRejected, Busy) as exc:
            reason = str(getattr(exc, "reason", type(exc).__name__))
            outcome = await self._record_failure(gsrn, started_at, attempts, reason, exc.message)
        except Exception as exc:  # a bug: recorded as one, and the batch goes on
            logger.exception("sync of an accounting point crashed", extra={"action": "sync_bug"})
            message = f"internal error {type(exc).__name__}: {exc}"
            outcome = await self._record_failure(
                gsrn, started_at, attempts, "internal_error", message
            )
        else:
            outcome = SyncOutcome(gsrn=gsrn, ok=True)
        SYNCS.labels("ok" if outcome.ok else outcome.reason or "error").inc()
        SYNC_SECONDS.observe(time.perf_counter() - start)
        return outcome

    async def _apply(
        self, data: AccountingPointData, *, started_at: datetime | None, actor: str
    ) -> None:
        """Merge one validated adapter answer in one transaction (``ap.apply_sync``)."""
        async with db.transaction(self.pool) as conn:
            with db.translate_db_errors():
                await repository.apply_sync(
                    conn,
                    gsrn=data.gsrn,
                    data=to_sync_payload(data),
                    started_at=started_at,
                    resync=timedelta(seconds=self.settings.ap_resync_interval_s),
                    actor=actor,
                )

    async def _record_failure(
        self, gsrn: str, started_at: datetime | None, attempts: int, reason: str, message: str
    ) -> SyncOutcome:
        retry_after = domain.backoff_seconds(
            attempts, base_s=self.settings.ap_retry_base_s, max_s=self.settings.ap_retry_max_s
        )
        logger.warning(
            "sync of %s failed (%s): %s; retry in %.0f s",
            gsrn,
            reason,
            message,
            retry_after,
            extra={"action": "sync_failed", "reason": reason},
        )
        if started_at is not None:
            async with db.transaction(self.pool) as conn:
                await repository.record_sync_failure(
                    conn,
                    gsrn=gsrn,
                    started_at=started_at,
                    error=message[:1000],
                    reason=reason,
                    retry_after=timedelta(seconds=retry_after),
                )
        return SyncOutcome(gsrn=gsrn, ok=False, reason=reason, error=message)

    async def claim_due(self, *, limit: int, worker: str) -> list[tuple[Any, date | None]]:
        async with db.transaction(self.pool) as conn:
            return await repository.claim_due_syncs(
                conn,
                limit=limit,
                dead_timeout=timedelta(seconds=self.settings.ap_dead_sync_timeout_s),
                worker=worker,
            )

    # --- lookup and registration ------------------------------------------------------------

    async def _ensure_known(self, gsrn: str, earliest_start: date | None = None) -> None:
        """Fetch an AP we hold no data of yet, synchronously (the lookup flow of the design).

        One held but never synced (imported, say) has no data either, so it is fetched too.
        """
        if not domain.is_valid_gsrn(gsrn):
            raise InvalidGsrn()
        async with self.pool.connection() as conn:
            held = await repository.get_accounting_point(conn, gsrn)
            if held is not None and held["last_synced_at"] is not None:
                return
        try:
            data = await self.client.get_accounting_point(gsrn, self._valid_from(earliest_start))
        except UpstreamNotFound as exc:
            raise AccountingPointNotFound(
                f"the datahub does not know accounting point {gsrn}"
            ) from exc
        await self._apply(data, started_at=None, actor="lookup")

    async def lookup(
        self, *, end_user: str, gsrn: str | None = None, controllable_unit: str | None = None
    ) -> LookupResult:
        """Resolve an AP (fetching it if unknown), check the end user, return AP and CUs."""
        if controllable_unit is not None:
            async with self.pool.connection() as conn:
                cu = await repository.find_controllable_unit(conn, controllable_unit)
            if cu is None:
                raise AccountingPointNotFound(f"no controllable unit {controllable_unit}")
            gsrn = str(cu["gsrn"])
        if gsrn is None:
            raise InvalidGsrn("give an accounting_point (GSRN) or a controllable_unit")
        await self._ensure_known(gsrn)
        async with self.pool.connection() as conn:
            ap = await repository.get_accounting_point(conn, gsrn)
            if ap is None:  # pragma: no cover - _ensure_known stored it
                raise AccountingPointNotFound()
            current = await repository.current_end_user(conn, ap["id"])
            if current != end_user:
                raise EndUserMismatch()
            units = await repository.list_controllable_units(conn, ap["id"])
        return LookupResult(accounting_point=ap, controllable_units=units)

    async def register_controllable_unit(
        self, *, gsrn: str, name: str, start_date: date | None = None
    ) -> dict[str, Any]:
        """Register a CU; its AP is fetched synchronously when unknown, and then synced."""
        await self._ensure_known(gsrn, start_date)
        async with db.transaction(self.pool) as conn:
            return await repository.insert_controllable_unit(
                conn, gsrn=gsrn, name=name, start_date=start_date
            )

    # --- events -------------------------------------------------------------------------------

    async def handle_changed(self, gsrns: list[str]) -> EventsOutcome:
        """Thin events: mark held APs as changed; events for others are ignored and counted."""
        wanted = sorted(set(gsrns))
        async with db.transaction(self.pool) as conn:
            held = set(await repository.request_syncs(conn, wanted))
        ignored = [g for g in wanted if g not in held]
        EVENTS.labels("accepted").inc(len(held))
        EVENTS.labels("ignored").inc(len(ignored))
        return EventsOutcome(accepted=sorted(held), ignored=ignored)

    # --- reads --------------------------------------------------------------------------------

    async def get(
        self, gsrn: str
    ) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
        """The AP with sync state, its timelines and its controllable units."""
        async with self.pool.connection() as conn:
            ap = await repository.get_accounting_point(conn, gsrn)
            if ap is None:
                raise AccountingPointNotFound(f"tether holds no accounting point {gsrn}")
            timelines = await repository.get_timelines(conn, ap["id"])
            units = await repository.list_controllable_units(conn, ap["id"])
        return ap, timelines, units

    async def history(self, gsrn: str) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn:
            ap = await repository.get_accounting_point(conn, gsrn)
            if ap is None:
                raise AccountingPointNotFound(f"tether holds no accounting point {gsrn}")
            return await repository.get_history(conn, ap["id"])

    async def sync_counts(self) -> dict[str, Any]:
        async with self.pool.connection() as conn:
            return await repository.count_sync_states(conn)


@asynccontextmanager
async def build(runtime: Runtime) -> AsyncIterator[AccountingPointService]:
    """The service for one process: adapter client plus reference data in place."""
    client = AdapterClient.from_settings(runtime.settings)
    async with db.transaction(runtime.pool) as conn:
        await repository.upsert_reference_data(conn)
    try:
        yield AccountingPointService(pool=runtime.pool, client=client, settings=runtime.settings)
    finally:
        await client.aclose()


def event_gsrn(event: CloudEvent) -> str | None:
    """The GSRN a thin event is about: ``data.gsrn``, else the CloudEvents ``subject``."""
    data = event.data or {}
    value = data.get("gsrn", event.subject)
    return value if isinstance(value, str) else None
