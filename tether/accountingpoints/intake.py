"""Event intake with group commit: concurrent event requests share one UPDATE and one commit;
and which GSRN an event names, refused when malformed.

Each thin event only marks APs as changed, and one commit costs far more than the row updates.
The first request is written at once; the requests that arrive while it commits wait and are
then written together (``core.groups``), so throughput grows with concurrency instead of
queueing on commits. Every caller still gets its answer only after its events are committed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from psycopg_pool import AsyncConnectionPool

from tether.accountingpoints import domain, repository
from tether.accountingpoints.errors import InvalidGsrn
from tether.core import db
from tether.core.events import CloudEvent
from tether.core.groups import Grouped

MAX_GROUP = 1000  # requests per commit (each at most one batch of events)


class Intake:
    """One per process: marks APs as changed, coalescing concurrent callers into one commit."""

    def __init__(self, pool: AsyncConnectionPool[Any], *, retry_base: timedelta) -> None:
        self.pool = pool
        self.retry_base = retry_base  # an AP backing off is due again at most this long after
        self._group: Grouped[list[str], dict[str, bool]] = Grouped(
            self._write, parallel=1, limit=MAX_GROUP
        )

    async def request_syncs(self, gsrns: list[str]) -> dict[str, bool]:
        """Mark ``gsrns`` as changed once committed; those tether holds (of every caller
        grouped with this one), each with whether it is due now or waits for its retry."""
        return await self._group.submit(gsrns)

    async def _write(self, group: list[list[str]]) -> list[dict[str, bool]]:
        wanted = sorted({g for gsrns in group for g in gsrns})  # one lock order
        async with db.transaction(self.pool) as conn:
            held = await repository.request_syncs(conn, wanted, retry_base=self.retry_base)
        return [held] * len(group)


def event_gsrn(event: CloudEvent) -> str | None:
    """The GSRN a thin event is about: ``data.gsrn``, else the CloudEvents ``subject``."""
    data = event.data or {}
    value = data.get("gsrn", event.subject)
    return value if isinstance(value, str) else None


def malformed(gsrns: list[str]) -> list[int]:
    """The positions of the GSRNs no accounting point can have: the sender's mistake, told
    apart from a well-formed GSRN of an AP tether does not hold (``ignored``)."""
    return [n for n, gsrn in enumerate(gsrns) if not domain.is_valid_gsrn(gsrn)]


def refuse_malformed(gsrns: list[str]) -> None:
    """A request naming a malformed GSRN is refused whole (422), as any other bad event; the
    answer names the event by its position, never by its value (it may be a person id)."""
    if bad := malformed(gsrns):
        where = "the event" if len(gsrns) == 1 else f"event {bad[0]} (counting from 0)"
        raise InvalidGsrn(f"{where} names a malformed GSRN. {InvalidGsrn().message}")
