"""Dry runs: the same split and diff as an order, answered by the payment system's simulation
service. Nothing of the case is stored; the dry run's key gets its one final status.

A case with an order at the payment system is refused (FEILET 409): its confirmed state changes
when that receipt comes, and the message a dry run stands for would be planned after it, against
the new state. Simulated against the old state it answered with amounts nobody will pay (and
the simulation service itself refuses a second ``NY`` for a case it already holds).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from psycopg_pool import AsyncConnectionPool

from tether.core import db
from tether.core.errors import UpstreamError
from tether.payments import codec, intake, repository
from tether.payments.client import OppdragClient, SimulationRefused
from tether.payments.intake import FAGSYSTEM

logger = logging.getLogger(__name__)


async def answer(
    pool: AsyncConnectionPool[Any],
    client: OppdragClient,
    key: str,
    msg: codec.Message,
    *,
    max_order_bytes: int | None,
) -> codec.StatusBody:
    """The dry run's final status: OK with its simulation, or FEILET saying why not."""
    async with db.transaction(pool) as conn:
        case = await repository.fetch_case(conn, fagsystem=FAGSYSTEM, sak_id=msg.sak_id)
        rows = await repository.fetch_utbetalinger(conn, fagsystem=FAGSYSTEM, sak_id=msg.sak_id)
    if case is not None and case.inflight_order is not None:
        return codec.simulation_busy(msg.sak_id, case.inflight_order)
    try:
        planned = codec.plan(  # as big as an intake's: the simulation takes what a queue does
            msg,
            codec.case_state(case, rows),
            now=intake.now(),
            order_id=uuid.uuid4(),
            max_order_bytes=max_order_bytes,
        )
    except codec.Rejected as exc:
        return codec.failed(exc, simulering=True)
    except Exception as exc:  # a bug in one dry run answers its caller, as an intake's does
        logger.exception("planning dry run %s failed", key, extra={"action": "payments_plan_bug"})
        return codec.internal_error(f"{type(exc).__name__}: {exc}", simulering=True)
    if planned.xml is None:
        return codec.simulated_no_change()
    try:
        simulation = await client.simulate(planned.xml)
    except SimulationRefused as exc:
        return codec.simulation_refused(exc.alvorlighetsgrad, exc.melding)
    except UpstreamError as exc:
        return codec.failed_simulation(exc.message, exc.status_code)
    return codec.simulated(planned.details, simulation)
