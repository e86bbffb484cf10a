"""The obligation page: one read renders everything; errors are pages in the shared layout too.

Money follows the accountants' convention: negative amounts in parentheses, ``($92,387.37)``,
never ``$-92,387.37``. The stale-data alert says why the copy is stale (e-licensing unavailable,
invalid data, a change not yet retrieved, too busy) and since when.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import HTMLResponse

from tether.core.auth import PAGE
from tether.core.errors import TetherError
from tether.core.web import render
from tether.elicensing.access import Service, is_report_version_id
from tether.elicensing.models import InvoiceRead, InvoiceType, StaleReason

router = APIRouter(prefix="/compliance-report-versions", include_in_schema=False)
PACKAGE = "tether.elicensing"
Force = Annotated[bool, Query(description="Refresh even inside the freshness window.")]

UNAVAILABLE = (
    "Connection to source could not be established since {since} ({why}). Invoice data last "
    "updated {time}. Refreshing the page may resolve this issue."
)
INVALID = (
    "E-licensing has been sending invoice data that fails validation since {since}, so it was "
    "not saved. Invoice data last updated {time}. Refreshing the page will not resolve this "
    "issue until e-licensing corrects its data."
)
CHANGED = (
    "A change was sent to e-licensing at {since} and the updated invoice has not been retrieved "
    "yet. Invoice data last updated {time}. Refreshing the page may resolve this issue."
)
BUSY = (
    "Too many invoices were being refreshed at once to refresh this one (since {since}). Invoice "
    "data last updated {time}. Refreshing the page may resolve this issue."
)
_WHY = {
    StaleReason.UPSTREAM_UNAVAILABLE: "e-licensing did not answer in time or failed",
    StaleReason.CIRCUIT_OPEN: "e-licensing was unavailable moments ago, so it was not called",
    StaleReason.UPSTREAM_REJECTED: "e-licensing refused tether's request",
    StaleReason.REFRESH_IN_PROGRESS: "a refresh already under way did not finish in time",
}


def money(amount: Decimal) -> str:
    """``$1,234.50``; negative ``($92,387.37)`` as accountants write it."""
    text = f"${abs(amount):,.2f}"
    return f"({text})" if amount < 0 else text


def stale_alert(read: InvoiceRead, shown: Callable[[datetime | None], str]) -> str | None:
    """The alert of a stale read: its reason and since when; ``None`` when the data is fresh."""
    reason = read.stale_reason
    if read.data_is_fresh or reason is None:
        return None
    values = {"since": shown(read.stale_since), "time": shown(read.last_refreshed)}
    if reason.is_invalid_data:
        return INVALID.format(**values)
    if reason is StaleReason.UPSTREAM_CHANGED:
        return CHANGED.format(**values)
    if reason is StaleReason.BUSY:
        return BUSY.format(**values)
    return UNAVAILABLE.format(why=_WHY.get(reason, reason.value), **values)


def error_page(status_code: int, title: str, message: str) -> HTMLResponse:
    """An error as a page in the shared layout (a browser gets HTML, never bare JSON)."""
    return render(
        PACKAGE,
        "error.html",
        status_code=status_code,
        headers={"Cache-Control": "no-store"},
        title=title,
        message=message,
    )


@router.get("/{report_version_id}/obligation", response_class=HTMLResponse, dependencies=PAGE)
async def obligation_page(
    report_version_id: str, service: Service, force: Force = False
) -> HTMLResponse:
    """The obligation page: one read (one refresh at most) renders everything."""
    if not is_report_version_id(report_version_id):  # int("²") raises; 10^20 is no bigint
        return error_page(
            404, "Not found", f"There is no compliance report version {report_version_id!r}."
        )
    try:
        read = await service.read_invoice(
            int(report_version_id), InvoiceType.OBLIGATION, force=force
        )
    except TetherError as exc:
        title = "Not found" if exc.status_code == 404 else "Invoice unavailable"
        return error_page(exc.status_code, title, exc.message)
    alert = stale_alert(read, service.display_time)
    inv = read.invoice
    return render(
        PACKAGE,
        "obligation.html",
        alerts=[alert] if alert else [],
        headers={"Age": age(read), "Cache-Control": "no-store"},
        report_version_id=report_version_id,
        invoice=inv,
        payments=[p for li in inv.line_items for p in li.payments],
        adjustments=[a for li in inv.line_items for a in li.adjustments],
        last_refreshed_display=service.display_time(read.last_refreshed),
        money=money,
    )


def age(read: InvoiceRead) -> str:
    """Seconds since the last successful refresh, for the ``Age`` header."""
    if read.last_refreshed is None:
        return "0"
    return str(
        max(
            0, int((datetime.now(read.last_refreshed.tzinfo) - read.last_refreshed).total_seconds())
        )
    )
