"""Use cases the CLI, the API and the worker share: database, loads, runs and their files."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg
from psycopg.rows import dict_row

from tether.accruals import metrics
from tether.accruals.settings import AccrualsSettings
from tether.accruals.sql import Q
from tether.core import db, migrations
from tether.core.bootstrap import Runtime
from tether.core.settings import Settings


def database(settings: Settings) -> str:
    """The database URL, with the accruals schema migrated (what these commands need)."""
    url = db.url_in_use(settings)
    migrations.upgrade(url, ("tether.core", "tether.accruals"))
    return url


def list_runs(url: str) -> list[dict[str, Any]]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        return [_jsonable(r) for r in conn.execute(Q["run_list"]).fetchall()]


def run_detail(url: str, period_end: date) -> dict[str, Any] | None:
    """The run row with its steps, chunk progress, failures and export files."""
    with psycopg.connect(url, row_factory=dict_row) as conn:
        found = conn.execute(Q["run_get"], {"period_end": period_end}).fetchone()
        if found is None:
            return None
        p = {"period_end": period_end}
        out = _jsonable(found)
        out["steps"] = [_jsonable(r) for r in conn.execute(Q["run_steps"], p).fetchall()]
        out["progress"] = _jsonable(conn.execute(Q["chunk_progress"], p).fetchone() or {})
        out["failures"] = [dict(r) for r in conn.execute(Q["failures"], p).fetchall()]
        out["exports"] = [dict(r) for r in conn.execute(Q["exports"], p).fetchall()]
        out["fix_log"] = [dict(r) for r in conn.execute(Q["fix_log"], p).fetchall()]
        return out


def warnings(detail: dict[str, Any]) -> list[str]:
    """What an operator should know about a finished run (CLI output, run page): accounts left
    out with nothing to accrue, and a run with no account at all."""
    prepare = next((s for s in detail.get("steps", []) if s["step"] == "prepare"), None)
    if prepare is None or detail.get("status") != "finished":
        return []
    found = prepare["detail"] or {}
    day, out = detail["period_end"], []
    if found.get("no_data"):
        out.append(
            f"{found['no_data']} account(s) have neither an invoice nor meter data up to {day}"
            f" as at {detail['as_at']}: nothing to accrue, left out of the run"
        )
    if not found.get("accounts"):
        out.append(
            f"nothing to accrue for {day}: no account has an invoice or meter data up to it as at"
            " the as-at (is the period end before the data starts, or is the data not loaded?)"
        )
    return out


def export_content(url: str, period_end: date, name: str) -> bytes | None:
    with psycopg.connect(url) as conn:
        row = conn.execute(Q["export_content"], {"period_end": period_end, "name": name}).fetchone()
    return None if row is None else bytes(row[0])


def _jsonable(row: Any) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(dict(row), default=str))
    return out


@dataclass(frozen=True, kw_only=True)
class AccrualsService:
    """What the API needs: the database URL (runs are read with short sync connections in a
    thread) and the settings."""

    url: str
    settings: AccrualsSettings
    runtime: Runtime


@asynccontextmanager
async def build(runtime: Runtime) -> AsyncIterator[AccrualsService]:
    settings = runtime.settings_of(AccrualsSettings)
    metrics.PROGRESS.url = runtime.database_url
    yield AccrualsService(url=runtime.database_url, settings=settings, runtime=runtime)
