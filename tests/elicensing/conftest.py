"""Fixtures of the e-licensing tests: a real simulator over sockets, real Postgres, the service."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool

from tether.core import db
from tether.core.api import install_error_handlers
from tether.core.bootstrap import Runtime
from tether.core.security import install_security
from tether.core.settings import Settings
from tether.elicensing import api
from tether.elicensing.demo import seed_ledger
from tether.elicensing.service import ElicensingService, build
from tether.elicensing.settings import ElicensingSettings
from tether.elicensing.simulator import ElicensingSimulatorServer, make_simulator

INVOICE_CALL = "GET /client/{id}/invoice"


@pytest.fixture
def sim() -> Iterator[ElicensingSimulatorServer]:
    server = make_simulator(clients=3, seed=7)
    server.state.slow_s = 3.0  # longer than the tests' read timeout, short enough to drain
    server.start_in_thread()
    yield server
    server.stop()


def make_settings(sim: ElicensingSimulatorServer, **kw: Any) -> ElicensingSettings:
    values: dict[str, Any] = {
        "url": sim.url,
        # Roomy enough that a loaded two-core CI box stalling the loop for most of a second
        # cannot fail a healthy call (CI once saw a loopback connect "time out" at 0.5 s).
        "connect_timeout_s": 5.0,
        "read_timeout_s": 1.5,
        "breaker_failure_threshold": 2,
        "breaker_open_s": 0.5,
    }
    values.update(kw)
    return ElicensingSettings(**values)


@pytest.fixture
def el_settings(sim: ElicensingSimulatorServer) -> ElicensingSettings:
    return make_settings(sim)


@pytest.fixture
def runtime(
    settings: Settings, el_settings: ElicensingSettings, db_url: str, pool: AsyncConnectionPool[Any]
) -> Runtime:
    return Runtime(
        settings=settings,
        database_url=db_url,
        pool=pool,
        overrides={ElicensingSettings: el_settings},
    )


@pytest.fixture
async def service(runtime: Runtime) -> AsyncIterator[ElicensingService]:
    async with build(runtime) as svc:
        yield svc


@pytest.fixture
async def versions(runtime: Runtime, sim: ElicensingSimulatorServer) -> list[int]:
    """Report versions 101.. linked to the simulator's invoices, none retrieved yet."""
    return await seed_ledger(runtime, sim)


def make_app(service: ElicensingService) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    install_security(app, Settings(), pool=lambda: service.pool)
    app.include_router(api.router)
    app.state.elicensing = service
    return app


@pytest.fixture
async def http(
    service: ElicensingService, auth_headers: dict[str, str]
) -> AsyncIterator[httpx.AsyncClient]:
    """The routes in process, called with the admin key."""
    transport = httpx.ASGITransport(make_app(service), raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://tether", headers=auth_headers
    ) as client:
        yield client


def invoice_number(sim: ElicensingSimulatorServer, index: int = 0) -> str:
    return sorted(sim.ledger.invoices)[index]


@asynccontextmanager
async def small_service(
    runtime: Runtime, pool_max: int, **settings: Any
) -> AsyncIterator[ElicensingService]:
    """A service on a request pool of its own with ``pool_max`` connections (one "process")."""
    pool = db.make_pool(runtime.database_url, min_size=1, max_size=pool_max)
    pool.timeout = 10  # a read stuck on the pool fails the test in 10 s, not 30
    await pool.open(wait=True)
    base = runtime.overrides[ElicensingSettings]
    assert isinstance(base, ElicensingSettings)
    el = base.model_copy(update=settings)
    try:
        small = dataclasses.replace(runtime, pool=pool, overrides={ElicensingSettings: el})
        async with build(small) as service:
            yield service
    finally:
        await pool.close()


def client_for(service: ElicensingService, headers: dict[str, str]) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(make_app(service), raise_app_exceptions=False)
    return httpx.AsyncClient(
        transport=transport, base_url="http://tether", timeout=120, headers=headers
    )
