"""Retention of superseded meter data versions, and the run guard that follows from it.

Replaced versions (``acc.*_superseded``) are kept so that a run date re-run later sees the data
as at its as-at; kept forever they would grow with every revision. :func:`purge` deletes those
kept before ``now - TETHER_ACCRUALS_SUPERSEDED_RETENTION_DAYS`` (a run still under way holds the
horizon back to its as-at), in bounded batches of their own transactions, and records the
horizon first. A snapshot as at an earlier time may have lost versions, so :func:`check_as_at`
refuses a run (or re-run, or resubmit) whose as-at is before the latest recorded horizon: it
could not reproduce the run date's files. Nothing purged yet: nothing refused. A run checks at
submit, when its attempt starts and in each pricing transaction (a resubmit, queued, is priced
later and is not marked running: a purge may have passed its as-at meanwhile).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg

from tether.accruals.settings import AccrualsSettings
from tether.accruals.sql import Q
from tether.core.errors import Conflict


class SnapshotPurged(Conflict):
    """A run's as-at is before the horizon of a purge of superseded versions (409 in the API,
    through the core error handler)."""


def _refusal(as_at: datetime, horizon: datetime) -> SnapshotPurged:
    return SnapshotPurged(
        f"as-at {as_at.isoformat()} is before {horizon.isoformat()}, the horizon of the last"
        " purge of superseded meter data (tether accruals purge-superseded, keeping"
        " TETHER_ACCRUALS_SUPERSEDED_RETENTION_DAYS): the versions replaced before it are"
        " deleted, so the data as at this as-at can no longer be rebuilt and the run would not"
        " reproduce the run date's files. Use the files its last attempt stored (tether accruals"
        " runs --period-end, or the API's exports), or run it with --as-at (API: as_at) at or"
        f" after {horizon.isoformat()}: a new snapshot, whose figures may differ."
    )


def check_as_at(conn: psycopg.Connection[Any], as_at: datetime) -> None:
    """Raise :class:`SnapshotPurged` when ``as_at`` is before the latest purge horizon.

    Takes the purge lock, shared, for the rest of ``conn``'s transaction: call it in the
    transaction that marks the run as running, so a purge starting meanwhile sees that run, and
    in each transaction that reads the snapshot for a run not marked running (a resubmit's
    pricing), so a purge cannot start deleting under it."""
    conn.execute(Q["retention_lock_shared"])
    row = conn.execute(Q["purged_before"]).fetchone()
    horizon = row[0] if row else None
    if horizon is not None and as_at < horizon:
        raise _refusal(as_at, horizon)


def check(url: str, as_at: datetime) -> None:
    """:func:`check_as_at` on a connection of its own (at submit: a clear error at once)."""
    with psycopg.connect(url) as conn, conn.transaction():
        check_as_at(conn, as_at)


@dataclass(frozen=True, kw_only=True)
class PurgeResult:
    horizon: datetime
    channel_days: int
    basic_reads: int
    dry_run: bool
    held_by: date | None = None  # the run marked running whose as-at held the horizon back

    def held_back(self) -> str:
        """What to tell an operator when a run held the horizon back, else ''."""
        if self.held_by is None:
            return ""
        return (
            f"the horizon is held back to the as-at of the run of {self.held_by}, marked"
            " running: if no worker is pricing it (tether accruals runs --period-end"
            f" {self.held_by}), run it again (tether accruals run --period-end {self.held_by})"
            " so that later purges go on"
        )


def purge(
    url: str,
    settings: AccrualsSettings,
    *,
    dry_run: bool = False,
    batch: int = 10_000,
    progress: Callable[[str, int], None] | None = None,
) -> PurgeResult:
    """Delete the superseded versions kept before the horizon; ``dry_run`` only counts them.

    ``progress(table, deleted so far)`` after each batch."""
    days = {"days": settings.superseded_retention_days}
    with psycopg.connect(url, autocommit=True) as conn:
        if dry_run:
            row = conn.execute(Q["purge_horizon"], days).fetchone()
            assert row is not None
            counts = conn.execute(Q["purge_count"], {"horizon": row[0]}).fetchone()
            assert counts is not None
            return PurgeResult(
                horizon=row[0],
                channel_days=counts[0],
                basic_reads=counts[1],
                dry_run=True,
                held_by=row[1],
            )
        with conn.transaction():  # recorded before anything goes: runs before it are refused
            conn.execute(Q["retention_lock"])
            row = conn.execute(Q["purge_horizon"], days).fetchone()
            assert row is not None
            horizon = row[0]
            found = conn.execute(Q["purge_begin"], {"horizon": horizon, **days}).fetchone()
            assert found is not None
        gone = {table: _delete(conn, table, horizon, batch, progress) for table in _TABLES}
        conn.execute(Q["purge_end"], {"purge_id": found[0], **gone})
    return PurgeResult(
        horizon=horizon,
        channel_days=gone["channel_days"],
        basic_reads=gone["basic_reads"],
        dry_run=False,
        held_by=row[1],
    )


_TABLES = {"channel_days": "purge_channel_days", "basic_reads": "purge_basic_reads"}


def _delete(
    conn: psycopg.Connection[Any],
    table: str,
    horizon: datetime,
    batch: int,
    progress: Callable[[str, int], None] | None,
) -> int:
    """Batches of at most ``batch`` rows, each its own transaction, until one comes up short."""
    gone = 0
    while True:
        cur = conn.execute(Q[_TABLES[table]], {"horizon": horizon, "batch": batch})
        gone += cur.rowcount
        if progress:
            progress(table, gone)
        if cur.rowcount < batch:
            return gone
