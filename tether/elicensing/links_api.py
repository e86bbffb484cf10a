"""Operator routes: register, list and unlink the obligation link of a report version.

Reads need the ``read`` credential, changes the ``write`` one (``access.READ`` / ``WRITE``).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from tether.core.auth import READ, WRITE
from tether.elicensing import obligations
from tether.elicensing.access import ReportVersionId, Service
from tether.elicensing.models import ObligationLink
from tether.elicensing.obligations import ObligationLinkIn

router = APIRouter(prefix="/api/v1/elicensing/obligations", tags=["e-licensing operators"])
ACTOR = "api"  # until requests carry an identity (the security work), changes are by "api"


class ObligationLinkOut(BaseModel):
    report_version_id: int
    reporting_year: int
    obligation_id: str
    fee_amount: Decimal
    invoice_number: str | None
    client_object_id: str
    client_guid: str
    operator_legal_name: str
    cra_business_number: str
    recorded_at: datetime | None
    recorded_by: str | None


class ObligationLinkVersionOut(BaseModel):
    invoice_number: str | None
    obligation_id: str
    fee_amount: Decimal
    client_object_id: str | None
    valid_from: datetime
    valid_until: datetime | None
    recorded_by: str | None
    ended_by: str | None
    replaced_by: str | None


def _out(link: ObligationLink) -> ObligationLinkOut:
    return ObligationLinkOut.model_validate(link, from_attributes=True)


@router.get("", response_model=list[ObligationLinkOut], dependencies=READ)
async def list_links(
    service: Service,
    after: Annotated[int, Query(ge=0, description="Report versions after this id.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[ObligationLinkOut]:
    """Registered obligations in report version order (page with ``after``)."""
    return [
        _out(link) for link in await obligations.list_links(service.pool, after=after, limit=limit)
    ]


@router.put(
    "/{report_version_id}",
    response_model=ObligationLinkOut,
    dependencies=WRITE,
    responses={201: {"model": ObligationLinkOut, "description": "Linked now"}},
)
async def register(
    report_version_id: ReportVersionId,
    body: ObligationLinkIn,
    service: Service,
    response: Response,
) -> ObligationLinkOut:
    """Link a report version's obligation to its invoice: 201 new, 200 already so, 409 other."""
    link, created = await obligations.register(service.pool, report_version_id, body, actor=ACTOR)
    response.status_code = 201 if created else 200
    return _out(link)


@router.delete("/{report_version_id}", response_model=ObligationLinkOut, dependencies=WRITE)
async def unlink(report_version_id: ReportVersionId, service: Service) -> ObligationLinkOut:
    """Remove the link (kept in history); 404 when there is none."""
    return _out(await obligations.unlink(service.pool, report_version_id, actor=ACTOR))


@router.get(
    "/{report_version_id}/history",
    response_model=list[ObligationLinkVersionOut],
    dependencies=READ,
)
async def history(
    report_version_id: ReportVersionId, service: Service
) -> list[ObligationLinkVersionOut]:
    """Every version of the link, oldest first, with who recorded and who ended it."""
    return [
        ObligationLinkVersionOut.model_validate(v, from_attributes=True)
        for v in await obligations.history(service.pool, report_version_id)
    ]
