"""The capability's service as a route dependency, and the report version id of its paths;
each route's credential is one of ``tether.core.auth``'s ``READ``, ``WRITE`` or ``PAGE`` lists."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from tether.elicensing.service import ElicensingService


def service_of(request: Request) -> ElicensingService:
    """The capability's service, built once for the app (``app.state.elicensing``)."""
    service: ElicensingService = request.app.state.elicensing
    return service


Service = Annotated[ElicensingService, Depends(service_of)]


MAX_ID = 2**63 - 1
"""Report version ids are ``bigint``: a larger one names nothing, and would reach the database
only to fail as "a value cannot be stored" on a read."""

ReportVersionId = Annotated[
    int, Path(ge=1, le=MAX_ID, description="Id of the compliance report version (1 to 2^63-1).")
]


def is_report_version_id(text: str) -> bool:
    """Whether a page's path segment can name a report version (ASCII digits, in range)."""
    return text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_ID
