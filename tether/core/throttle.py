"""Failed sign-ins counted per client address: ``/login`` stops trying credentials for an address
that failed too often, so the form is not an unlimited guessing (or database-load) endpoint.

The count lives in PostgreSQL (``tether.login_failure``, core migration 0009), which sign-in
needs anyway: every API process (``tether serve --workers N``, several hosts) shares it and a
restart keeps it; a count in each process's memory allowed N times the failures. Time is the
database's ``now()``, so the processes' clocks need not agree. One statement records a failure,
one asks whether an address is blocked; ``max_failures`` 0 turns both off (no query at all).

An address is blocked only by its own failures, so a user at another address signs in as usual.
A success does not clear the count (failures leave with their window): else a guesser holding any
valid credential, an events-only token say, signed in now and then and never reached the limit.

Bounded: a row is small (a key of at most 24 characters, a count, an end) and dead once its
window ends; each failure deletes up to ``purge_batch`` ended windows, far more than the one row
it adds, so a flood of addresses leaves at most one window of its keys, then drains.

The address is whatever uvicorn made ``request.client`` (from ``X-Forwarded-For`` when the peer
is a trusted proxy): ``client_key`` counts only a valid IP (IPv6 by its /64, which one host
commonly holds whole), so an arbitrary header value is neither a fresh address per request nor a
large key in the table.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable
from typing import Any

from psycopg_pool import AsyncConnectionPool

from tether.core import db
from tether.core.sql import load_queries

Q = load_queries("tether.core", "throttle.sql")
INVALID = "invalid"  # the one key of every client address that is not an IP
PURGE_BATCH = 1000  # ended windows one failure deletes at most: a bounded cost per failure


def client_key(host: str) -> str:
    """The key ``host`` is counted under: its IPv4 address, its IPv6 /64, else ``INVALID``."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return INVALID
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))
    return str(address)


class LoginThrottle:
    """``max_failures`` failed sign-ins within ``window_s`` of an address's first block it until
    that window ends (``max_failures`` 0: never), counted in the database of ``pool``.

    Either call raises the pool's errors (``PoolTimeout``, ``psycopg.OperationalError``) when the
    database does not answer: ``/login`` then answers 503, as it would have to anyway since
    neither an API key nor the session a sign-in starts can be checked or stored without it.
    """

    def __init__(
        self,
        max_failures: int,
        window_s: float,
        pool: Callable[[], AsyncConnectionPool[Any]],
        *,
        purge_batch: int = PURGE_BATCH,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.purge_batch = purge_batch
        self._pool = pool

    async def retry_after(self, client: str) -> int:
        """Seconds until ``client`` may try again (0: now)."""
        if self.max_failures <= 0:
            return 0
        async with db.autocommit(self._pool()) as conn:
            row = await db.fetch_optional(
                conn, Q["blocked_for"], {"client": client, "max_failures": self.max_failures}
            )
        return 0 if row is None else max(1, math.ceil(row["left_s"]))

    async def failed(self, client: str) -> None:
        """Count one failed sign-in of ``client`` (and delete a batch of ended windows)."""
        if self.max_failures <= 0:
            return
        params = {"client": client, "window_s": self.window_s, "batch": self.purge_batch}
        async with db.autocommit(self._pool()) as conn:  # one statement: atomic by itself
            await db.execute(conn, Q["record_failure"], params)
