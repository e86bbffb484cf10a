"""Which ``tether worker`` processes are alive: a heartbeat per process (``core/health.py``
shows them on the console, ``/metrics`` and ``tether status``).

Without it nothing told an operator that no worker ran: backlogs only grew. Each worker
process upserts its row of ``tether.worker_process`` every ``BEAT_S`` from a loop of its own
(a statement every few seconds, on the process's pool) and deletes it on a clean stop. A row
silent for ``DEAD_AFTER_S`` is a process that was killed: the console shows it "(dead)" under
"workers gone silent", and a beat prunes it only after ``DEAD_KEPT_S`` (pruned at the same 30 s,
it vanished on any live worker's next beat before an operator could see it). No web stack
imported here: a worker process loads only what its jobs need.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from tether.core.errors import one_line
from tether.core.jobs import default_worker_id, idle
from tether.core.sql import load_queries

logger = logging.getLogger(__name__)
Q = load_queries("tether.core", "workers.sql")

BEAT_S = 5.0  # a worker process's heartbeat interval
DEAD_AFTER_S = 30.0  # silent this long: dead (six beats missed, not one slow statement)
DEAD_KEPT_S = 600.0  # a dead process's row is shown this long, then pruned
DEATHS_WINDOW_S = 3600.0  # the panel counts children's deaths over this
DEATHS_KEPT_S = 86400.0  # a death is kept this long
RECORD_TIMEOUT_S = 3.0  # a parent waits this long at most to record a death


async def heartbeat(
    pool: AsyncConnectionPool[Any],
    *,
    lane: str,
    jobs: Callable[[], Sequence[str]],
    stop: asyncio.Event,
    changed: asyncio.Event | None = None,
) -> None:
    """Beat until ``stop``, then delete this process's row. Never raises: a database outage
    is logged once, and its end once. Each beat lists ``jobs()``, the jobs still running (one
    that ended, as a NATS consumer does without NATS, was listed as if it ran); ``changed``
    beats at once."""
    params = {
        "id": default_worker_id(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "lane": lane,
        "jobs": list(jobs()),
        "started_at": datetime.now(UTC),
        "kept_s": DEAD_KEPT_S,
    }
    failing = False
    while not stop.is_set():
        params["jobs"] = list(jobs())
        try:
            async with pool.connection() as conn:
                await conn.execute(Q["beat_worker"], params)
        except (psycopg.Error, OSError) as exc:  # a pool timeout is a psycopg error too
            if not failing:
                logger.warning(
                    "worker heartbeat failed: %s", one_line(exc), extra={"action": "beat_failed"}
                )
            failing = True
        else:
            if failing:
                logger.info("worker heartbeat back", extra={"action": "beat_back"})
            failing = False
        await idle(stop, changed, BEAT_S)
    with contextlib.suppress(psycopg.Error, OSError, TimeoutError):
        async with asyncio.timeout(5), pool.connection() as conn:
            await conn.execute(Q["end_worker"], {"id": params["id"]})


def child_died(database_url: str, pid: int, *, lane: str, how: str, jobs: Sequence[str]) -> None:
    """Called by a ``tether worker`` parent that reaped a dead child: its row goes at once (it
    counted as alive until silent for ``DEAD_AFTER_S``) and its death is kept for the panel.
    One short connection (the parent has no pool, and forks children: no thread or loop is
    left behind); a database that does not answer within ``RECORD_TIMEOUT_S`` is logged."""
    params = {
        "id": default_worker_id(pid),  # the child's own
        "lane": lane,
        "how": how,
        "jobs": list(jobs),
        "kept_s": DEATHS_KEPT_S,
    }

    async def record() -> None:
        async with asyncio.timeout(RECORD_TIMEOUT_S):
            conn = await psycopg.AsyncConnection.connect(
                database_url, autocommit=True, connect_timeout=2, application_name="tether worker"
            )
            async with conn:
                await conn.execute(Q["child_died"], params)

    try:
        asyncio.run(record())
    except (psycopg.Error, OSError, TimeoutError) as exc:
        logger.warning(
            "could not record the death of worker process %s: %s",
            params["id"],
            one_line(exc),
            extra={"action": "child_death_unrecorded"},
        )
