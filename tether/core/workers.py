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

from tether.core.jobs import default_worker_id, idle
from tether.core.sql import load_queries

logger = logging.getLogger(__name__)
Q = load_queries("tether.core", "workers.sql")

BEAT_S = 5.0  # a worker process's heartbeat interval
DEAD_AFTER_S = 30.0  # silent this long: dead (six beats missed, not one slow statement)
DEAD_KEPT_S = 600.0  # a dead process's row is shown this long, then pruned


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
    that ended, as the payments jobs without NATS do, was listed as if it ran); ``changed``
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
                    "worker heartbeat failed: %s", reason(exc), extra={"action": "beat_failed"}
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


def reason(exc: BaseException) -> str:
    """An error in one line: its type and the first line of its message."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
