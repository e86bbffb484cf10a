"""An upstream's circuit on the console and on ``/metrics``, defined once for every capability
whose client has a breaker (``core/breaker.py``).

Operators alert on ``tether_circuit_open{upstream}`` and read the console for which upstream,
since when and the last failure; a capability that left its circuit out would make an outage
invisible. Each capability reads its circuit row in its own console statement (``LEFT JOIN
tether.circuit_breaker`` selecting the ``circuit_*`` columns below) and adds these rows and
gauges to its panel.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from tether.core.breaker import CircuitBreaker, CircuitState
from tether.core.console import Gauge, Row, Status, age

STATES = ("closed", "half_open", "open")
_STATUS: dict[str, Status] = {"closed": "ok", "half_open": "warn", "open": "bad"}


def _utc(moment: datetime | None) -> str:
    return "never" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def circuit_in(row: Mapping[str, Any], breaker: CircuitBreaker) -> CircuitState:
    """The circuit a console statement read: its ``circuit_state``, ``circuit_failures``,
    ``circuit_opened_at``, ``circuit_open_until`` and ``circuit_last_failure`` columns. No row
    yet means the upstream was never called, so closed."""
    return CircuitState(
        name=breaker.name,
        state=row["circuit_state"] or "closed",
        failures=row["circuit_failures"] or 0,
        opened_at=row["circuit_opened_at"],
        open_until=row["circuit_open_until"],
        probe_until=None,
        last_failure=row["circuit_last_failure"],
    )


def circuit_rows(
    circuit: CircuitState, shown: Callable[[datetime | None], str] = _utc
) -> tuple[Row, ...]:
    """The state, the failures and, unless closed, which upstream, since when and why."""
    state = circuit.state
    status = _STATUS.get(state, "bad")
    text = state.replace("_", "-")
    if state == "open" and circuit.open_until is not None:
        if circuit.open_until <= datetime.now(UTC):  # read as stuck: a past time, still open
            text += f" (a probe is due since {shown(circuit.open_until)}: the next call tries it)"
        else:
            text += f" (next probe at {shown(circuit.open_until)})"
    rows = [
        Row(label="circuit", value=text, status=status),
        Row(
            label="consecutive failures",
            value=str(circuit.failures),
            status="warn" if circuit.failures else "ok",
        ),
    ]
    if state != "closed":
        since = circuit.opened_at
        rows += [
            Row(label="upstream", value=circuit.name, status=status),
            Row(
                label="circuit open since",
                value=f"{shown(since)} ({age(since)} ago)" if since else "unknown",
                status=status,
            ),
            Row(label="last failure", value=(circuit.last_failure or "-")[:200], status=status),
        ]
    return tuple(rows)


def circuit_gauges(breaker: CircuitBreaker, circuit: CircuitState) -> tuple[Gauge, ...]:
    """``tether_circuit_state{upstream,state}`` and ``tether_circuit_open{upstream}``."""
    upstream = breaker.upstream
    return (
        *(
            Gauge(
                name="tether_circuit_state",
                help="Circuit breaker state per upstream (1 for the current state).",
                value=1.0 if state == circuit.state else 0.0,
                labels={"upstream": upstream, "state": state},
            )
            for state in STATES
        ),
        Gauge(
            name="tether_circuit_open",
            help="1 while the circuit to an upstream is open or probing.",
            value=0.0 if circuit.state == "closed" else 1.0,
            labels={"upstream": upstream},
        ),
    )
