"""HTTP routes of accruals: runs (list, detail, files, submit, resubmit), meter data, run pages.

Each group is behind one credential: ``READ`` on every GET, ``WRITE`` on the POSTs, ``PAGE``
(read, or the login form's session cookie) on the HTML pages.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.responses import HTMLResponse

from tether.accruals import exports, service
from tether.accruals.meterdata import read_meter_data
from tether.accruals.service import AccrualsService
from tether.core.auth import PAGE, READ, WRITE
from tether.core.web import render

api_read = APIRouter(prefix="/api/v1/accruals", tags=["accruals"], dependencies=READ)
api_write = APIRouter(prefix="/api/v1/accruals", tags=["accruals"], dependencies=WRITE)
pages = APIRouter(prefix="/accruals", include_in_schema=False, dependencies=PAGE)
FILES = (exports.SUMMARY, exports.LINES, exports.NEM12, exports.REPORT)


def _service(request: Request) -> AccrualsService:
    svc: AccrualsService = request.app.state.accruals
    return svc


Service = Annotated[AccrualsService, Depends(_service)]


class RunRequest(BaseModel):
    period_end: date = Field(
        ge=date(2000, 1, 1),
        le=date(2999, 12, 31),  # a lag added to a date near 9999 overflowed: a 500
        description="Run date (the run's identity), 2000-01-01 to 2999-12-31.",
    )
    as_at: datetime | None = Field(
        default=None,
        description="Snapshot cut-off (with offset), not in the future. Default: the run date's"
        " stored one, else period end + TETHER_ACCRUALS_AS_AT_LAG_DAYS, 00:00 AEST.",
    )
    new_settings: bool = Field(
        default=False,
        description="Re-run with the API process's estimation settings instead of the ones"
        " stored with the run date (its figures may differ).",
    )


class Submitted(BaseModel):
    workflow_id: str
    period_end: date


def _links(detail: dict[str, Any]) -> dict[str, Any]:
    pe = detail["period_end"]
    for export in detail.get("exports", []):
        export["href"] = f"/api/v1/accruals/runs/{pe}/exports/{export['name']}"
    detail["page"] = f"/accruals/runs/{pe}"
    return detail


@api_read.get("/runs")
async def list_runs(svc: Service) -> list[dict[str, Any]]:
    """Every run, newest period end first, with status and totals."""
    return await asyncio.to_thread(service.list_runs, svc.url)


@api_read.get("/runs/{period_end}")
async def get_run(period_end: date, svc: Service) -> dict[str, Any]:
    """Steps, chunk progress, totals, failures, the fix log and links to the files."""
    detail = await asyncio.to_thread(service.run_detail, svc.url, period_end)
    if detail is None:
        raise HTTPException(404, f"no run for {period_end}")
    return _links(detail)


@api_read.get("/runs/{period_end}/exports/{name}")
async def get_export(period_end: date, name: str, svc: Service) -> Response:
    """One file of the run, byte for byte as stored."""
    if name not in FILES:
        raise HTTPException(404, f"unknown file {name}; files: {', '.join(FILES)}")
    content = await asyncio.to_thread(service.export_content, svc.url, period_end, name)
    if content is None:
        raise HTTPException(404, f"run {period_end} has no {name} (yet)")
    kind = "application/json" if name.endswith(".json") else "text/csv"
    return Response(
        content, media_type=kind, headers={"content-disposition": f'attachment; filename="{name}"'}
    )


@api_read.get("/meter-data/{nmi}")
async def meter_data(
    nmi: str,
    svc: Service,
    date_from: Annotated[date, Query(alias="from", description="First day (YYYY-MM-DD).")],
    date_to: Annotated[date, Query(alias="to", description="Last day (YYYY-MM-DD).")],
) -> dict[str, Any]:
    """Stored channel-days (kWh) and basic reads of one NMI."""
    if date_to < date_from:
        raise HTTPException(422, "'to' is before 'from'")
    found = await read_meter_data(svc.runtime.pool, nmi, date_from, date_to)
    return found.as_json()


PURGED: dict[int | str, dict[str, Any]] = {
    409: {"description": "Its as-at is before the last purge of superseded meter data"}
}
REFUSED: dict[int | str, dict[str, Any]] = {
    **PURGED,
    422: {"description": "Its period end is not over, or its as-at is before it or in the future"},
}


@api_write.post("/runs", status_code=202, responses=REFUSED)
async def submit_run(body: RunRequest, svc: Service) -> Submitted:
    """Queue the run of a period end (re-running replaces its own results); workers run it.

    409 (retention.SnapshotPurged) when superseded meter data as at its as-at were purged: it
    could not be reproduced; 422 (plan.RunRefused) for a period end not over, or an as-at
    before its end or in the future."""
    from tether.accruals import flow

    if body.as_at is not None and body.as_at.tzinfo is None:
        raise HTTPException(422, "as_at needs an offset")
    wid = await asyncio.to_thread(
        lambda: flow.submit(
            svc.url, svc.settings, body.period_end, body.as_at, new_settings=body.new_settings
        )
    )
    return Submitted(workflow_id=wid, period_end=body.period_end)


@api_write.post("/runs/{period_end}/resubmit", status_code=202, responses=PURGED)
async def resubmit_run(period_end: date, svc: Service) -> Submitted:
    """Price the run's failed accounts again (nothing else), then re-export."""
    from tether.accruals import flow

    try:
        wid = await asyncio.to_thread(flow.resubmit, svc.url, svc.settings, period_end)
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None
    return Submitted(workflow_id=wid, period_end=period_end)


@pages.get("/runs", response_class=HTMLResponse)
async def runs_page(svc: Service) -> HTMLResponse:
    runs = await asyncio.to_thread(service.list_runs, svc.url)
    return render("tether.accruals", "runs.html", runs=runs)


@pages.get("/runs/{period_end}", response_class=HTMLResponse)
async def run_page(period_end: date, svc: Service) -> HTMLResponse:
    detail = await asyncio.to_thread(service.run_detail, svc.url, period_end)
    if detail is None:
        raise HTTPException(404, f"no run for {period_end}")
    alerts = []
    if detail["status"] == "running":
        alerts.append("This run is still in progress: reload for the latest figures.")
    alerts += service.warnings(detail)
    if detail.get("failures"):
        alerts.append(
            f"{len(detail['failures'])} account(s) failed: fix their data, then "
            f"`tether accruals resubmit --period-end {period_end}`."
        )
    return render("tether.accruals", "run.html", alerts=alerts, run=_links(detail))


router = APIRouter()
router.include_router(api_read)
router.include_router(api_write)
router.include_router(pages)
