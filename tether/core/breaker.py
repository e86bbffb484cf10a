"""A circuit breaker whose state lives in PostgreSQL, so every tether process shares it.

Once one process learns an external system is down, every process stops calling it for
``open_s`` and answers from its local copy at once. After that, exactly one caller (across all
processes) gets a probe lease; its outcome closes the circuit or opens it again.

Only unavailability (down, timeout, 5xx) counts as a failure: a system that answers with bad data
is up, and tripping the breaker would hide the real problem.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from prometheus_client import Counter
from psycopg_pool import AsyncConnectionPool

from tether.core import db
from tether.core.errors import UpstreamUnavailable
from tether.core.sql import load_queries

logger = logging.getLogger(__name__)
queries = load_queries("tether.core", "breaker.sql")

BREAKER_DECISIONS = Counter(
    "tether_circuit_decisions_total", "Circuit breaker decisions", ["circuit", "decision"]
)


class Decision(StrEnum):
    ALLOW = "allow"  #: circuit closed: call
    PROBE = "probe"  #: circuit was open long enough: this caller probes
    REJECT = "reject"  #: circuit open (or another caller is probing): do not call


class CircuitOpen(UpstreamUnavailable):
    """The circuit is open: the external system was recently unavailable, so it is not called."""

    reason = "circuit_open"

    def __init__(self, message: str | None = None, *, open_until: datetime | None = None) -> None:
        super().__init__(message)
        self.open_until = open_until

    @property
    def retry_after_s(self) -> int | None:
        """Whole seconds until the circuit lets a call through (a 503's ``Retry-After``)."""
        if self.open_until is None:
            return None
        return max(1, math.ceil((self.open_until - datetime.now(UTC)).total_seconds()))


@dataclass(frozen=True, kw_only=True)
class CircuitState:
    name: str
    state: str
    failures: int
    opened_at: datetime | None
    open_until: datetime | None
    probe_until: datetime | None
    last_failure: str | None


class CircuitBreaker:
    """Guards calls to one external system; shared through ``tether.circuit_breaker``."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        name: str,
        *,
        failure_threshold: int,
        open_s: float,
        probe_lease_s: float | None = None,
        upstream: str | None = None,
    ) -> None:
        self.pool = pool
        self.name = name
        # the ``upstream`` label of its gauges: stable when the name carries a URL
        self.upstream = upstream or name
        self.failure_threshold = max(1, failure_threshold)
        self.open_for = timedelta(seconds=open_s)
        # a probe that never reports back (process killed) must not block probing forever
        self.probe_lease = timedelta(seconds=probe_lease_s if probe_lease_s else max(open_s, 1))
        self._ensured = False

    async def _ensure(self) -> None:
        """Create the circuit's row in a transaction of its own, committed before it is used
        (callers that start together each insert-or-skip until one has committed)."""
        if not self._ensured:
            async with db.transaction(self.pool) as conn:
                await db.execute(conn, queries["ensure_circuit"], {"name": self.name})
            self._ensured = True

    async def acquire(self, *, announce: bool = True) -> Decision:
        """Allow or probe, or raise ``CircuitOpen``. A caller that may find nothing to call for
        passes ``announce=False``, then ``probing()`` when its call goes out under the probe, or
        ``release_probe()``: a probe is logged and counted only when it is a call."""
        await self._ensure()
        async with db.autocommit(self.pool) as conn:  # one statement, atomic on its own
            row = await db.fetch_one(
                conn,
                queries["acquire_circuit"],
                {"name": self.name, "probe_lease": self.probe_lease},
            )
        decision = Decision(row["decision"])
        if decision is Decision.PROBE:
            if announce:
                self.probing()
            return decision
        BREAKER_DECISIONS.labels(self.name, decision.value).inc()
        if decision is Decision.REJECT:
            raise CircuitOpen(
                f"{self.name} was unavailable recently; not called until the circuit closes",
                open_until=row["open_until"],
            )
        return decision

    def probing(self) -> None:
        """A call goes out under this caller's probe lease: log and count the probe."""
        BREAKER_DECISIONS.labels(self.name, Decision.PROBE.value).inc()
        logger.info("probing %s", self.name, extra={"action": "circuit_probe"})

    async def release_probe(self) -> None:
        """Give back a probe lease that made no call (nothing to call for): held, it kept the
        circuit half-open and refused every other caller until the lease ran out."""
        async with db.autocommit(self.pool) as conn:
            await db.execute(conn, queries["release_probe"], {"name": self.name})

    async def record_success(self) -> None:
        """The system answered (even with an error of ours or bad data): close the circuit."""
        await self._ensure()
        async with db.autocommit(self.pool) as conn:  # one statement, atomic on its own
            closed = await db.execute(conn, queries["record_circuit_success"], {"name": self.name})
        if closed:
            logger.info("circuit %s closed", self.name, extra={"action": "circuit_closed"})

    async def record_failure(self, error: str) -> CircuitState:
        """The system was unavailable: count it, and open the circuit at the threshold."""
        await self._ensure()
        async with db.transaction(self.pool) as conn:
            await db.execute(
                conn,
                queries["record_circuit_failure"],
                {
                    "name": self.name,
                    "error": error[:500],
                    "threshold": self.failure_threshold,
                    "open_for": self.open_for,
                },
            )
            state = await self._fetch(conn)
        if state.state == "open":
            logger.warning(
                "circuit %s open until %s after %d failure(s): %s",
                self.name,
                state.open_until,
                state.failures,
                error,
                extra={"action": "circuit_open"},
            )
        return state

    async def state(self) -> CircuitState:
        """The shared state of this circuit."""
        await self._ensure()
        async with db.transaction(self.pool) as conn:
            return await self._fetch(conn)

    async def _fetch(self, conn: db.Connection) -> CircuitState:
        row = await db.fetch_one(conn, queries["fetch_circuit"], {"name": self.name})
        return CircuitState(
            name=row["name"],
            state=row["state"],
            failures=row["failures"],
            opened_at=row["opened_at"],
            open_until=row["open_until"],
            probe_until=row["probe_until"],
            last_failure=row["last_failure"],
        )
