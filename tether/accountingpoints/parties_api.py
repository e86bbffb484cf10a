"""HTTP routes for the reference data operators manage: energy suppliers and grid areas."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from tether.accountingpoints import parties
from tether.accountingpoints.parties import PartyKind
from tether.core.auth import require

router = APIRouter(prefix="/reference", tags=["accounting points"])  # under /api/v1


class PartyIn(BaseModel):
    business_id: str = Field(description="GLN of a supplier, EIC-Y code of a grid area.")
    name: str = Field(min_length=1, max_length=200)


class PartyOut(BaseModel):
    business_id: str
    name: str
    verified: bool = Field(description="False: accepted from a sync, not yet confirmed.")
    retired_at: datetime | None


def _pool(request: Request) -> Any:
    return request.app.state.accounting_points.pool


@router.get("/{kind}", response_model=list[PartyOut], dependencies=[require("read")])
async def list_parties(
    kind: PartyKind,
    request: Request,
    include_retired: Annotated[bool, Query(description="Retired parties too.")] = False,
) -> Any:
    """Energy suppliers or grid areas tether knows, active ones unless `include_retired`."""
    return await parties.list_parties(_pool(request), kind, include_retired=include_retired)


@router.post("/{kind}", response_model=list[PartyOut], dependencies=[require("write")])
async def add_parties(kind: PartyKind, body: list[PartyIn], request: Request) -> Any:
    """Add or rename parties (all or none); each becomes verified and active again."""
    rows = [(p.business_id, p.name) for p in body]
    return await parties.add_parties(_pool(request), kind, rows)


@router.post(
    "/{kind}/{business_id}/retire", response_model=PartyOut, dependencies=[require("write")]
)
async def retire_party(kind: PartyKind, business_id: str, request: Request) -> Any:
    """Mark a party retired; it stays known, since past periods still name it. 404 if unknown."""
    return await parties.retire_party(_pool(request), kind, business_id)
