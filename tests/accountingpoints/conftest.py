"""What the accounting point sync tests share: settings against a simulator, the service built on
them, and direct SQL for arranging and inspecting state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tether.accountingpoints.service import AccountingPointService, build
from tether.accountingpoints.settings import AccountingPointSettings
from tether.accountingpoints.simulator import Datahub
from tether.core import db
from tether.core.bootstrap import open_runtime
from tether.core.settings import Settings
from tether.core.simulator import SimulatorServer

TOKEN = "ap-test-token"
EARLY = date(2000, 1, 1)  # a CU start date before every generated AP: the whole record is fetched
RETRY_BASE_S = 60.0

Sim = tuple[SimulatorServer, Datahub]


def make_settings(server: SimulatorServer, **kw: Any) -> AccountingPointSettings:
    values: dict[str, Any] = {
        "adapter_url": server.url,
        "adapter_token": TOKEN,
        "adapter_timeout_s": 1.5,  # roomy: a loaded CI box may stall the simulator thread
        "adapter_retries": 0,
        "retry_base_s": RETRY_BASE_S,
        "dead_sync_timeout_s": 600,
    }
    values.update(kw)
    return AccountingPointSettings(**values)


def core_settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=db_url, data_dir=tmp_path / "data", db_pool_max=6)  # type: ignore[call-arg]


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """What a test module changes in ``make_settings`` for its ``service``."""
    return {}


@pytest.fixture
async def service(
    db_url: str, sim: Sim, tmp_path: Path, settings_overrides: dict[str, Any]
) -> AsyncIterator[AccountingPointService]:
    """The service of one process against the module's ``sim`` and a fresh database."""
    settings = make_settings(sim[0], **settings_overrides)
    async with (
        open_runtime(
            core_settings(db_url, tmp_path), database_url=db_url, overrides=[settings]
        ) as runtime,
        build(runtime) as svc,
    ):
        yield svc


async def sql(service: AccountingPointService, query: Any, *params: Any) -> list[dict[str, Any]]:
    async with db.transaction(service.pool) as conn:
        cur = await conn.execute(query, params or None)
        return await cur.fetchall() if cur.description else []


async def seed_never_synced(
    service: AccountingPointService, gsrns: list[str], start: date | None = EARLY
) -> None:
    """APs with a CU each, straight into the tables: never synced, due at once."""
    await sql(service, "INSERT INTO ap.accounting_point (gsrn) SELECT unnest(%s::text[])", gsrns)
    await sql(
        service,
        "INSERT INTO ap.controllable_unit (name, accounting_point_id, start_date) "
        "SELECT 'cu ' || a.gsrn, a.id, %s FROM ap.accounting_point a WHERE a.gsrn = ANY(%s)",
        start,
        gsrns,
    )
