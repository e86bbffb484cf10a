"""The console's circuit row: an open circuit whose wait is over says a probe is due, not a
"next probe at" time already past (it read as a circuit stuck open)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tether.core.breaker import CircuitState
from tether.core.circuits import circuit_rows


def _open(until: datetime) -> CircuitState:
    return CircuitState(
        name="upstream",
        state="open",
        failures=3,
        opened_at=until - timedelta(seconds=5),
        open_until=until,
        probe_until=None,
        last_failure="refused",
    )


def test_an_open_circuit_shows_when_it_probes_next() -> None:
    row = circuit_rows(_open(datetime.now(UTC) + timedelta(minutes=1)))[0]
    assert row.value.startswith("open (next probe at ") and row.status == "bad"


def test_an_open_circuit_past_its_wait_says_the_next_call_probes_it() -> None:
    row = circuit_rows(_open(datetime.now(UTC) - timedelta(seconds=31)))[0]
    assert row.value.startswith("open (a probe is due since ")
    assert "the next call tries it" in row.value and "next probe at" not in row.value
