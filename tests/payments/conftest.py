"""Fixtures of the payments tests: databases migrated with the payments schema, a service, and
message builders in the reference's JSON shape."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool

from tether.core.api import install_error_handlers
from tether.core.hotpath import install_hot_routes
from tether.core.jetstream import Publisher
from tether.core.routetable import install_route_table
from tether.core.security import install_security
from tether.core.settings import Settings
from tether.payments.api import router
from tether.payments.client import OppdragClient
from tether.payments.records import StatusRow
from tether.payments.service import PaymentsService
from tether.payments.settings import PaymentsSettings
from tether.payments.simulator import OppdragSimulator, Topology, start_simulator
from tether.payments.statuses import publish_statuses
from tether.worker import WorkerOptions, run_jobs


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
        "receipt_timeout_s": 2.0,
    }
    return PaymentsSettings(oppdrag_url=oppdrag_url, **{**names, **overrides})


@pytest.fixture
async def service(pool: AsyncConnectionPool[Any]) -> AsyncIterator[PaymentsService]:
    """A service with no reachable payment system (intake and receipts need none)."""
    own = unique_settings()
    async with OppdragClient.from_settings(own) as client:
        yield PaymentsService(pool=pool, settings=own, client=client)


def order_publisher(js: Any, service: PaymentsService) -> Publisher:
    """What ``send_orders`` publishes orders with, on the test's connection."""
    s = service.settings
    return Publisher(js._nc, s.orders_subject, stream=s.orders_stream)


async def publish_once(service: PaymentsService, nats_url: str) -> int:
    """One run of the status publisher until nothing is left; how many it published."""
    return await asyncio.wait_for(
        publish_statuses(service, nats_url, stop=asyncio.Event(), once=True), 30
    )


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


@dataclass
class Harness:
    """A service with its jobs running, against a simulator over real NATS."""

    service: PaymentsService
    sim: Any
    nats_url: str

    async def send(self, key: str, body: bytes, wait_s: float = 20.0) -> StatusRow:
        await self.service.submit(key, body)
        return await self.service.wait_status(key, wait_s)

    def paid(self, sak: str = "sak1") -> dict[str, dict[str, int]]:
        """What the payment system pays now, per klassekode and day."""
        view = self.sim.ledger.view(sak) or {"chains": []}
        out: dict[str, dict[str, int]] = {}
        for chain in view["chains"]:
            out.setdefault(chain["klassekode"], {}).update(chain["days"])
        return {k: v for k, v in out.items() if v}

    async def fault(self, mode: str) -> None:
        async with httpx.AsyncClient(headers=self.sim.control_headers) as http:
            r = await http.put(f"{self.sim.control_url}/faults", json={"mode": mode})
            r.raise_for_status()


def expected(days: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """What a message says should be paid, in the shape of ``Harness.paid``."""
    kode = {"Dagpenger": "DAGPENGER", "DagpengerFerietillegg": "DAGPENGERFERIE"}
    out: dict[str, dict[str, int]] = {}
    for d in days:
        if d["utbetaltBeløp"]:
            out.setdefault(kode[d["utbetalingstype"]], {})[d["dato"]] = d["utbetaltBeløp"]
    return out


def unique_topology(**overrides: Any) -> Topology:
    """A simulator's own streams, subjects and consumer: tests never share them."""
    tag = uuid.uuid4().hex[:10]
    return Topology(
        orders_stream=f"ORDERS_{tag}",
        orders_subject=f"t{tag}.oppdrag.orders.v1",
        receipts_stream=f"RECEIPTS_{tag}",
        receipts_subject=f"t{tag}.oppdrag.receipts.v1",
        durable=f"sim{tag}",
        **overrides,
    )


def topology_of(own: PaymentsSettings) -> Topology:
    """The simulator's side of the streams a worker with ``own`` settings uses."""
    return Topology(
        orders_stream=own.orders_stream,
        orders_subject=own.orders_subject,
        receipts_stream=own.receipts_stream,
        receipts_subject=own.receipts_subject,
        durable=f"sim-{own.orders_stream}",
    )


@pytest.fixture
def sim(nats_url: str) -> Iterator[OppdragSimulator]:
    """A simulator on streams of its own, stopped after the test."""
    server = start_simulator(nats_url, topology=unique_topology())
    yield server
    server.stop()


@pytest.fixture
async def harness(
    pool: AsyncConnectionPool[Any], db_url: str, nats_url: str, settings: Settings
) -> AsyncIterator[Harness]:
    """The simulator, and one ``tether worker`` (payments jobs only) in this process."""
    own = unique_settings()
    sim = start_simulator(
        nats_url, topology=topology_of(own), token=own.oppdrag_token.get_secret_value()
    )
    own = own.model_copy(update={"oppdrag_url": sim.url})
    core = settings.model_copy(update={"nats_url": nats_url})
    stop = asyncio.Event()
    options = WorkerOptions(only=("payments",))
    worker = asyncio.create_task(run_jobs(core, db_url, options, stop, overrides=[own]))
    async with OppdragClient.from_settings(own) as client:
        service = PaymentsService(pool=pool, settings=own, client=client)
        try:
            yield Harness(service=service, sim=sim, nats_url=nats_url)
        finally:
            stop.set()
            try:
                await worker
            finally:
                sim.stop()  # also when the worker failed: no simulator thread outlives its test


@pytest.fixture
def app(service: PaymentsService) -> FastAPI:
    """The payments routes on an app holding a real service and database, as tether.app wires
    them (security, the intake's fast path, the route table)."""
    app = FastAPI()
    install_error_handlers(app)
    install_security(app, Settings(), pool=lambda: service.pool)
    app.include_router(router)
    install_hot_routes(app)  # as tether.app does: the intake is served by the fast path
    install_route_table(app)  # and the other routes through the flat route table
    app.state.payments = service
    return app


@pytest.fixture
async def http(app: FastAPI, auth_headers: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", headers=auth_headers
    ) as client:
        yield client
