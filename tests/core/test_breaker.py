"""The shared circuit breaker and the advisory-lock helpers, on their own."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from tether.core.breaker import CircuitBreaker, CircuitOpen, Decision
from tether.core.errors import Busy
from tether.core.locking import exclusive, lock_key


async def test_breaker_opens_at_threshold_and_only_one_caller_probes(
    pool: AsyncConnectionPool[Any],
) -> None:
    breaker = CircuitBreaker(pool, "thing", failure_threshold=2, open_s=0.2)
    assert await breaker.acquire() is Decision.ALLOW
    assert (await breaker.record_failure("boom")).state == "closed"
    assert (await breaker.record_failure("boom")).state == "open"
    with pytest.raises(CircuitOpen):
        await breaker.acquire()
    await asyncio.sleep(0.3)  # waiting for the open period to pass, not asserting on time
    other = CircuitBreaker(pool, "thing", failure_threshold=2, open_s=0.2)
    results = await asyncio.gather(breaker.acquire(), other.acquire(), return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["CircuitOpen", "Decision"]
    await breaker.record_success()
    assert (await other.state()).state == "closed"
    assert await other.acquire() is Decision.ALLOW


async def test_the_circuit_is_open_since_the_outage_began_not_since_its_last_probe(
    pool: AsyncConnectionPool[Any],
) -> None:
    """Every failure past the threshold, and every failed probe, used to move ``opened_at``
    to now: the console's "circuit open since" said "2 s ago" forty seconds into an outage."""
    breaker = CircuitBreaker(pool, "since", failure_threshold=1, open_s=0.05)
    await breaker.record_failure("down")
    began = (await breaker.state()).opened_at
    assert began is not None
    await breaker.record_failure("still down")  # past the threshold
    await asyncio.sleep(0.1)  # the open period passes: the next caller probes
    assert await breaker.acquire() is Decision.PROBE
    await breaker.record_failure("the probe failed too")
    after = await breaker.state()
    assert after.state == "open" and after.opened_at == began
    await breaker.record_success()
    await breaker.record_failure("a new outage")
    assert (await breaker.state()).opened_at != began  # a new outage begins anew


async def test_exclusive_holders_take_turns_and_a_late_one_gets_busy(
    pool: AsyncConnectionPool[Any],
) -> None:
    inside = 0
    overlaps = 0

    async def holder() -> None:
        nonlocal inside, overlaps
        async with exclusive(pool, "balance", wait_s=5):
            inside += 1
            overlaps += inside > 1
            await asyncio.sleep(0.02)
            inside -= 1

    await asyncio.gather(*(holder() for _ in range(6)))
    assert overlaps == 0

    async with exclusive(pool, "balance", wait_s=1):
        with pytest.raises(Busy, match="balance is held"):
            async with exclusive(pool, "balance", wait_s=0.05):
                pass  # pragma: no cover - never entered
    async with exclusive(pool, "balance", wait_s=0.05):
        pass  # released: free again


def test_lock_key_is_stable_and_signed_64_bit() -> None:
    assert lock_key("a") == lock_key("a") != lock_key("b")
    assert -(2**63) <= lock_key("x") < 2**63


async def test_a_half_open_circuit_is_on_the_console_and_in_metrics_by_its_upstream(
    pool: AsyncConnectionPool[Any],
) -> None:
    """What the console and ``/metrics`` show of a circuit, the same for every capability: the
    gauges carry the breaker's short upstream label, not its name with a URL."""
    from tether.core.circuits import circuit_gauges, circuit_in, circuit_rows

    breaker = CircuitBreaker(
        pool, "adapter http://h:1", failure_threshold=3, open_s=60, upstream="adapter"
    )
    for _ in range(3):
        await breaker.record_failure("connection refused")
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE tether.circuit_breaker SET state = 'half_open' WHERE name = %s", [breaker.name]
        )
    state = await breaker.state()
    row = {
        "circuit_state": state.state,
        "circuit_failures": state.failures,
        "circuit_opened_at": state.opened_at,
        "circuit_open_until": state.open_until,
        "circuit_last_failure": state.last_failure,
    }
    circuit = circuit_in(row, breaker)
    rows = {r.label: (r.value, r.status) for r in circuit_rows(circuit)}
    assert rows["circuit"] == ("half-open", "warn")
    assert rows["consecutive failures"] == ("3", "warn")
    assert rows["upstream"] == ("adapter http://h:1", "warn")
    assert rows["last failure"] == ("connection refused", "warn")
    assert rows["circuit open since"][0].endswith(" s ago)")
    gauges = {
        (g.name, tuple(sorted(g.labels.items()))): g.value for g in circuit_gauges(breaker, circuit)
    }
    assert gauges[("tether_circuit_open", (("upstream", "adapter"),))] == 1
    assert gauges[("tether_circuit_state", (("state", "half_open"), ("upstream", "adapter")))] == 1
    assert gauges[("tether_circuit_state", (("state", "open"), ("upstream", "adapter")))] == 0
    never = circuit_in(dict.fromkeys(row), breaker)  # no row yet: never called, closed
    assert [r.label for r in circuit_rows(never)] == ["circuit", "consecutive failures"]
    assert {g.value for g in circuit_gauges(breaker, never) if g.name == "tether_circuit_open"} == {
        0
    }
