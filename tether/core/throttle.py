"""Sign-in attempts counted per client address: ``/login`` tries at most ``max_failures``
wrong credentials of an address per window, so the form is not an unlimited guessing (or
database-load) endpoint.

Race-free by reserving before trying: an attempt first takes a place in its address's count
(``reserve``, one statement whose row lock makes concurrent attempts of one address take the
places one at a time) and only then is its credential tried; a full window refuses it untried
(429). A right credential gives its place back (``release``); a wrong one keeps it, which makes
it a counted failure. Counting after the try let any number of concurrent guesses pass the check
before the first was counted (200 parallel guesses all got 401). An attempt whose request dies
between the two (a dropped connection, a database that stopped answering, a crash) keeps its
place: it counts as a failure, which errs on the side of the limit.

The count lives in PostgreSQL (``tether.login_failure``, core migrations 0009 and 0010), which
sign-in needs anyway: every API process (``tether serve --workers N``, several hosts) shares it
and a restart keeps it; a count in each process's memory allowed N times the failures. Time is
the database's ``now()``, so the processes' clocks need not agree. ``max_failures`` 0 turns the
limit off (no query at all).

An address is blocked only by its own failures, so a user at another address signs in as usual.
A success gives back only its own place, never earlier failures (they leave with their window):
else a guesser holding any valid credential, an events-only token say, signed in now and then
and never reached the limit.

Bounded: a row is small (a key of at most 24 characters, a count, an end) and dead once its
window ends; each reserved attempt deletes up to ``purge_batch`` ended windows, far more than the
one row it adds, so a flood of addresses leaves at most one window of its keys, then drains.

The address is whatever uvicorn made ``request.client`` (from ``X-Forwarded-For`` when the peer
is a trusted proxy): ``client_key`` counts only a valid IP (IPv6 by its /64, which one host
commonly holds whole), so an arbitrary header value is neither a fresh address per request nor a
large key in the table.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool

from tether.core import db
from tether.core.sql import load_queries

Q = load_queries("tether.core", "throttle.sql")
INVALID = "invalid"  # the one key of every client address that is not an IP
PURGE_BATCH = 1000  # ended windows one attempt deletes at most: a bounded cost per attempt


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


@dataclass(frozen=True)
class Attempt:
    """A sign-in's place in its address's count: ``wait_s`` > 0 refuses it (seconds until the
    address may try again); else ``window_ends`` is the window it holds a place in (None: no
    limit, nothing to give back)."""

    wait_s: int = 0
    window_ends: datetime | None = None


class LoginThrottle:
    """At most ``max_failures`` failed sign-ins of an address within ``window_s`` of its first
    attempt (``max_failures`` 0: no limit), counted in the database of ``pool``.

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

    async def reserve(self, client: str) -> Attempt:
        """Count one attempt of ``client`` before its credential is tried (and delete a batch of
        ended windows); refused, it counts nothing."""
        if self.max_failures <= 0:
            return Attempt()
        params = {
            "client": client,
            "window_s": self.window_s,
            "max_failures": self.max_failures,
            "batch": self.purge_batch,
        }
        async with db.autocommit(self._pool()) as conn:  # one statement: atomic by itself
            row = await db.fetch_optional(conn, Q["reserve"], params)
        if row is not None and row["reserved"]:
            return Attempt(window_ends=row["window_ends"])
        # refused; the window this statement's snapshot shows may be older than the one that
        # refused (or missing): then that one has just started, and lasts about a whole window
        left_s = row["left_s"] if row is not None and row["left_s"] > 0 else self.window_s
        return Attempt(wait_s=max(1, math.ceil(left_s)))

    async def release(self, client: str, attempt: Attempt) -> None:
        """Give back the place of ``attempt``, whose credential was right."""
        if attempt.window_ends is None:
            return
        params = {"client": client, "window_ends": attempt.window_ends}
        async with db.autocommit(self._pool()) as conn:
            await db.execute(conn, Q["release"], params)
