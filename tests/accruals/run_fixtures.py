"""A small hand-computable world for the run tests (NEM files, accounts, tariffs, invoices), and
what those tests share: loading a world, a generated one, the stored exports, the API client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool

from tether.accruals import api, loader, run
from tether.accruals.exports import NEM12
from tether.accruals.generator import generate
from tether.accruals.ingest import FileResult, ingest_files
from tether.accruals.loader import COLUMNS
from tether.accruals.service import build
from tether.accruals.settings import AccrualsSettings
from tether.core import db, migrations
from tether.core.api import install_error_handlers
from tether.core.bootstrap import Runtime
from tether.core.security import install_security
from tether.core.settings import Settings

ACCOUNTS = (
    ",".join(COLUMNS["accounts"])
    + """
A1,QTOU000001,residential,QLD,Energex,TOU,monthly,interval
A2,QTOU000002,residential,QLD,Energex,TOU,monthly,interval
A3,QFLT000003,residential,QLD,Ergon,FLAT,quarterly,interval
A4,QBAS000004,residential,QLD,Ergon,FLAT,quarterly,basic
A5,QGAP000005,business,QLD,Solo,FLAT,monthly,interval
A7,QCTL000007,residential,QLD,Ergon,FLAT,monthly,interval
"""
)
TARIFFS = (
    ",".join(COLUMNS["tariffs"])
    + """
TOU,2026-01-01,supply,all,all,,,,100,c/day
TOU,2026-01-01,tou,peak,weekday,14:00,20:00,,50,c/kWh
TOU,2026-01-01,tou,offpeak,weekday,00:00,14:00,,20,c/kWh
TOU,2026-01-01,tou,offpeak,weekday,20:00,24:00,,20,c/kWh
TOU,2026-01-01,tou,offpeak,weekend,00:00,24:00,,20,c/kWh
TOU,2026-01-01,feed_in,all,all,,,,10,c/kWh
FLAT,2025-07-01,supply,all,all,,,,80,c/day
FLAT,2025-07-01,flat,all,all,,,,25,c/kWh
FLAT,2025-07-01,controlled_load,all,all,,,,15,c/kWh
FLAT,2026-03-15,supply,all,all,,,,90,c/day
FLAT,2026-03-15,flat,all,all,,,,30,c/kWh
FLAT,2026-03-15,controlled_load,all,all,,,,15,c/kWh
"""
)
INVOICES = """invoice_id,account_id,period_from,period_to,issued_at,amount_ex_gst
I1,A1,2026-02-28,2026-03-29,2026-03-30T09:00:00+10:00,100.00
I2,A2,2026-03-11,2026-04-10,2026-04-02T09:00:00+10:00,100.00
I3,A3,2025-10-01,2025-12-31,2026-01-05T09:00:00+10:00,300.00
I4,A4,2025-12-01,2026-02-28,2026-03-02T09:00:00+10:00,250.00
I5,A5,2026-02-28,2026-03-29,2026-03-30T09:00:00+10:00,50.00
I7,A7,2026-02-28,2026-03-29,2026-03-30T09:00:00+10:00,50.00
"""
PERIOD_END = date(2026, 3, 31)
UPDATED = "20260401120000"


def _day(d: date, values: list[float]) -> str:
    return f"300,{d:%Y%m%d}," + ",".join(f"{v:g}" for v in values) + f",A,,,{UPDATED},"


def nem12() -> str:
    lines = ["100,NEM12,202604011200,MDP,RET"]
    export = [0.1 if 20 <= i < 28 else 0.0 for i in range(48)]
    lines.append("200,QTOU000001,E1B1,1,E1,N1,M1,kWh,30,")
    lines += [_day(date(2026, 3, 30), [0.5] * 48), _day(date(2026, 3, 31), [0.5] * 48)]
    lines.append("200,QTOU000001,E1B1,2,B1,N1,M1,kWh,30,")
    lines += [_day(date(2026, 3, 30), export), _day(date(2026, 3, 31), export)]
    lines.append("200,QTOU000002,E1,1,E1,N1,M2,kWh,30,")
    lines += [_day(date(2026, 3, 31), [0.3] * 48)]
    lines.append("200,QFLT000003,E1,1,E1,N1,M3,kWh,30,")
    d = date(2026, 1, 1)
    while d <= PERIOD_END:
        lines.append(_day(d, [0.25] * 48))
        d += timedelta(days=1)
    lines.append("200,QGAP000005,E1,1,E1,N1,M5,kWh,30,")
    lines.append(_day(date(2026, 3, 30), [float(i % 4) / 4 for i in range(48)]))
    lines.append("200,QCTL000007,E1E2,1,E1,N1,M7,kWh,30,")
    lines += [_day(date(2026, 3, 30), [0.25] * 48), _day(date(2026, 3, 31), [0.25] * 48)]
    lines.append("200,QCTL000007,E1E2,2,E2,N1,M7,kWh,30,")
    night = [0.1 if i < 14 else 0.0 for i in range(48)]
    lines += [_day(date(2026, 3, 30), night), _day(date(2026, 3, 31), night)]
    lines.append("900")
    return "\n".join(lines) + "\n"


def nem13() -> str:
    return (
        "100,NEM13,202603021030,MDP,RET\n"
        "250,QBAS000004,11,1,11,11,M4,E,000100,20260131120000,A,,,000380,20260228120000,A,,,"
        "280,kWh,20260531,20260301120000,20260301120000\n"
        "900\n"
    )


def write_world(folder: Path) -> dict[str, Path]:
    files = {
        "accounts": ACCOUNTS,
        "tariffs": TARIFFS,
        "invoices": INVOICES,
        "nem12": nem12(),
        "nem13": nem13(),
    }
    out = {}
    for name, text in files.items():
        path = folder / f"{name}.csv"
        path.write_text(text)
        out[name] = path
    return out


async def load_world(db_url: str, folder: Path, meters: Mapping[str, str]) -> str:
    """This world's accounts, tariffs and invoices with ``meters`` as its meter data ("nem12",
    "nem13" or both: file text), migrated, loaded and ingested into ``db_url``."""
    migrations.upgrade(db_url, ("tether.core", "tether.accruals"))
    files = write_world(folder)
    for kind in ("accounts", "tariffs", "invoices"):
        result = loader.load(db_url, kind, files[kind])
        assert result.status == "loaded", result.errors
    for name, text in meters.items():
        files[name].write_text(text)
    ingested = await ingest_paths(db_url, [files[name] for name in meters])
    assert [(r.status, r.errors) for r in ingested] == [("loaded", [])] * len(meters)
    return db_url


async def generated_world(db_url: str, folder: Path, period_end: date) -> str:
    """A generated world of 40 accounts over 3 months to ``period_end``, a fifth of the meters'
    data stopping days before it: every file loaded and ingested into ``db_url``."""
    migrations.upgrade(db_url, ("tether.core", "tether.accruals"))
    made = generate(40, 3, folder / "gen", 5, end=period_end)
    for kind in loader.KINDS:
        assert loader.load(db_url, kind, folder / "gen" / f"{kind}.csv").status == "loaded"
    await ingest_paths(db_url, [*made.nem12_files, *made.nem13_files])
    return db_url


async def ingest_paths(db_url: str, paths: list[Path]) -> list[FileResult]:
    """Ingest ``paths`` as the service does (a pool of its own), one result per file."""
    pool = db.make_pool(db_url, min_size=1, max_size=2)
    await pool.open(wait=True)
    try:
        return await ingest_files(pool, paths)
    finally:
        await pool.close()


def stored_export(url: str, name: str, period_end: date = PERIOD_END) -> bytes:
    """The file ``name`` the run of ``period_end`` stored."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT content FROM acc.run_export WHERE period_end = %s AND name = %s",
            (period_end, name),
        ).fetchone()
    assert row is not None
    return bytes(row[0])


def run_result(url: str, account_id: str, period_end: date = PERIOD_END) -> tuple[Any, ...]:
    """An account's (kwh_actual, kwh_estimated, estimate_method) in the run of ``period_end``."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT kwh_actual, kwh_estimated, estimate_method FROM acc.run_result"
            " WHERE period_end = %s AND account_id = %s",
            (period_end, account_id),
        ).fetchone()
    assert row is not None, f"{account_id} has no result"
    return tuple(row)


def estimated_reads(url: str, period_end: date = PERIOD_END) -> list[tuple[Any, ...]]:
    """The run's estimated basic reads: (account, suffix, from, read date, kWh, method)."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT account_id, suffix, from_date::text, read_date::text, kwh, method"
            " FROM acc.run_estimated_read WHERE period_end = %s ORDER BY account_id, suffix",
            (period_end,),
        ).fetchall()


def run_and_export(url: str, settings: AccrualsSettings, period_end: date = PERIOD_END) -> bytes:
    """Run ``period_end`` inline at its default as-at; the NEM12 export it stored."""
    run.run_inline(url, period_end, run.default_as_at(period_end, settings), settings)
    return stored_export(url, NEM12, period_end)


# the settings of the small worlds' runs: one contributor makes a profile, chunks of two accounts
RUN_SETTINGS = AccrualsSettings(min_contributors=1, chunk_size=2, schedule="")  # type: ignore[call-arg]


@asynccontextmanager
async def api_client(
    url: str,
    settings: Settings,
    pool: AsyncConnectionPool[Any],
    headers: dict[str, str],
    accruals: AccrualsSettings,
) -> AsyncIterator[httpx.AsyncClient]:
    """The accruals routes with the core error handlers and security, over ASGI, as ``headers``
    call them: the API's answers without a server."""
    runtime = Runtime(
        settings=settings, database_url=url, pool=pool, overrides={AccrualsSettings: accruals}
    )
    async with build(runtime) as svc:
        app = FastAPI()
        install_error_handlers(app)
        install_security(app, settings, pool=lambda: pool)
        app.include_router(api.router)
        app.state.accruals = svc
        transport = httpx.ASGITransport(app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://tether", headers=headers
        ) as client:
            yield client
