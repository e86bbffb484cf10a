"""Fixtures of the payments tests: databases migrated with the payments schema, a service, and
message builders in the reference's JSON shape."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import date, timedelta
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from tether.core import db, migrations
from tether.payments.client import OppdragClient
from tether.payments.service import PaymentsService
from tether.payments.settings import PaymentsSettings

COMPONENTS = (*migrations.COMPONENTS, "tether.payments")


@pytest.fixture(scope="session")
def template_db(server_url: str) -> Iterator[str]:
    """The shared template, with the payments migrations too (until the capability list does it)."""
    name = f"tether_tpl_pay_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    migrations.upgrade(db.with_dbname(server_url, name), tuple(dict.fromkeys(COMPONENTS)))
    yield name
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def unique_settings(oppdrag_url: str = "http://127.0.0.1:9", **overrides: Any) -> PaymentsSettings:
    """Settings whose streams, subjects and durables are this test's own (one NATS per session)."""
    tag = uuid.uuid4().hex[:8]
    names: dict[str, Any] = {
        "intake_stream": f"PAY_IN_{tag}",
        "intake_subject": f"payments.dagpenger.v1.{tag}",
        "status_stream": f"PAY_ST_{tag}",
        "status_subject": f"payments.status.v1.{tag}",
        "orders_stream": f"OPP_ORD_{tag}",
        "orders_subject": f"oppdrag.orders.v1.{tag}",
        "receipts_stream": f"OPP_REC_{tag}",
        "receipts_subject": f"oppdrag.receipts.v1.{tag}",
        "poll_interval_s": 0.05,
        "send_dead_timeout_s": 2.0,
    }
    return PaymentsSettings(oppdrag_url=oppdrag_url, **{**names, **overrides})


@pytest.fixture
async def service(pool: AsyncConnectionPool[Any]) -> AsyncIterator[PaymentsService]:
    """A service with no reachable payment system (intake and receipts need none)."""
    own = unique_settings()
    async with OppdragClient.from_settings(own) as client:
        yield PaymentsService(pool=pool, settings=own, client=client)


def weekdays(start: date, end: date) -> list[date]:
    out, day = [], start
    while day <= end:
        if day.weekday() < 5:
            out.append(day)
        day += timedelta(days=1)
    return out


def day(
    dato: date,
    belop: int = 100,
    *,
    periode: str = "m1",
    sats: int | None = None,
    type_: str = "Dagpenger",
) -> dict[str, Any]:
    return {
        "meldeperiode": periode,
        "dato": dato.isoformat(),
        "sats": belop if sats is None else sats,
        "utbetaltBeløp": belop,
        "utbetalingstype": type_,
    }


def message(
    days: list[dict[str, Any]],
    *,
    sak: str = "sak1",
    behandling: str = "b1",
    dryrun: bool = False,
    **extra: Any,
) -> bytes:
    body = {
        "dryrun": dryrun,
        "sakId": sak,
        "behandlingId": behandling,
        "ident": "12345678910",
        "vedtakstidspunktet": "2024-06-20T10:00:00",
        "utbetalinger": days,
        **extra,
    }
    return json.dumps(body, ensure_ascii=False).encode()


def june(first: int, last: int, belop: int = 100, **kw: Any) -> list[dict[str, Any]]:
    """Weekday entries of June 2024 from ``first`` to ``last``."""
    return [day(d, belop, **kw) for d in weekdays(date(2024, 6, first), date(2024, 6, last))]
