"""Operator use cases: register, list and unlink the obligation of a report version.

An obligation link says which e-licensing invoice (of which client, of which operator) bills a
compliance report version; reads and the page follow it. Every change is kept in history with
who made it (``tether.enable_history``), so an unlinked or replaced link stays answerable.
Registering the same link again changes nothing; a different link for a linked report version
is a conflict (unlink first), so a link is never replaced by accident.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict, Field

from tether.core import db
from tether.core.errors import Conflict, NotFound
from tether.elicensing import repository
from tether.elicensing.models import ObligationLink, ObligationLinkVersion

Pool = AsyncConnectionPool[Any]
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class ObligationLinkIn(BaseModel):
    """What an operator registers; checked here, before the database, for the API and the CLI."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reporting_year: int = Field(ge=2000, le=2100, description="Year the report covers.")
    obligation_id: str = Field(
        min_length=1, max_length=100, pattern=ID_PATTERN, description="e.g. 24-0001-1-1."
    )
    fee_amount: Decimal = Field(
        ge=0, lt=Decimal("1e12"), decimal_places=2, description="Dollars the obligation bills."
    )
    invoice_number: str = Field(
        min_length=1, max_length=100, pattern=ID_PATTERN, description="E-licensing invoice."
    )
    client_object_id: str = Field(
        min_length=1, max_length=100, pattern=ID_PATTERN, description="E-licensing client id."
    )
    client_guid: UUID = Field(description="E-licensing client GUID.")
    operator_legal_name: str = Field(min_length=1, max_length=255)
    cra_business_number: str = Field(pattern=r"^\d{9}$", description="Nine digits.")

    def as_link(self, report_version_id: int) -> ObligationLink:
        return ObligationLink(
            report_version_id=report_version_id,
            reporting_year=self.reporting_year,
            obligation_id=self.obligation_id,
            fee_amount=self.fee_amount,
            invoice_number=self.invoice_number,
            client_object_id=self.client_object_id,
            client_guid=str(self.client_guid),
            operator_legal_name=self.operator_legal_name,
            cra_business_number=self.cra_business_number,
        )


async def register(
    pool: Pool, report_version_id: int, link: ObligationLinkIn, *, actor: str
) -> tuple[ObligationLink, bool]:
    """Link a report version's obligation to its invoice; ``(link, created)``. One transaction."""
    if report_version_id <= 0:
        raise NotFound(f"there is no compliance report version {report_version_id}")
    wanted = link.as_link(report_version_id)
    async with db.transaction(pool) as conn:
        await repository.set_actor(conn, actor)
        existing = await repository.fetch_obligation_link(conn, report_version_id=report_version_id)
        if existing is not None:
            if existing.same_link(wanted):
                return existing, False
            raise Conflict(
                f"report version {report_version_id} is already linked to invoice "
                f"{existing.invoice_number} of client {existing.client_object_id}; unlink it first"
            )
        operator_id = await repository.insert_operator(
            conn, legal_name=link.operator_legal_name, cra_business_number=link.cra_business_number
        )
        client_link, owner, guid = await repository.link_client(
            conn, operator_id, link.client_object_id, str(link.client_guid)
        )
        if owner != operator_id:
            raise Conflict(f"client {link.client_object_id} belongs to another operator")
        if guid != str(link.client_guid):
            raise Conflict(f"client {link.client_object_id} has another GUID")
        await repository.insert_report_version(
            conn, id=report_version_id, operator_id=operator_id, reporting_year=link.reporting_year
        )
        version_owner = await repository.fetch_report_version_operator(
            conn, report_version_id=report_version_id
        )
        if version_owner != operator_id:
            raise Conflict(f"report version {report_version_id} belongs to another operator")
        await repository.insert_obligation(
            conn,
            report_version_id=report_version_id,
            obligation_id=link.obligation_id,
            fee_amount=link.fee_amount,
            client_operator_id=client_link,
            invoice_number=link.invoice_number,
        )
        made = await repository.fetch_obligation_link(conn, report_version_id=report_version_id)
    assert made is not None  # inserted in this transaction
    return made, True


async def list_links(pool: Pool, *, after: int = 0, limit: int = 100) -> list[ObligationLink]:
    """Registered obligations in report version order, ``limit`` after version ``after``."""
    async with db.transaction(pool) as conn:
        return await repository.list_obligation_links(conn, after=after, limit=limit)


async def unlink(pool: Pool, report_version_id: int, *, actor: str) -> ObligationLink:
    """Remove a report version's obligation link; what it was stays in history."""
    async with db.transaction(pool) as conn:
        await repository.set_actor(conn, actor)
        existing = await repository.fetch_obligation_link(conn, report_version_id=report_version_id)
        if existing is None or not await repository.delete_obligation_link(
            conn, report_version_id=report_version_id
        ):
            raise NotFound(f"report version {report_version_id} has no registered obligation")
    return existing


async def history(pool: Pool, report_version_id: int) -> list[ObligationLinkVersion]:
    """Every version of the link, oldest first; the current one (if any) last."""
    async with db.transaction(pool) as conn:
        return await repository.fetch_obligation_history(conn, report_version_id=report_version_id)
