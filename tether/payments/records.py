"""Rows of the payments tables as frozen records (the domain's own types live in models.py)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tether.core.records import record

Json = Mapping[str, Any]


@record
class CaseRow:
    """A case: its active uids (None = never paid) and the order its next messages wait for."""

    fagsystem: str
    sak_id: str
    active_uids: frozenset[str] | None
    has_order_before: bool
    inflight_order: uuid.UUID | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> CaseRow:
        uids = row["active_uids"]
        return cls(
            fagsystem=row["fagsystem"],
            sak_id=row["sak_id"],
            active_uids=None if uids is None else frozenset(uids),
            has_order_before=row["has_order_before"],
            inflight_order=row["inflight_order"],
        )


@record
class IntakeRow:
    """What the batch intake function says about one message of the batch."""

    logged: bool  # False: the key was logged before (``seen_hash`` is what is stored under it)
    seen_hash: str | None
    case: CaseRow | None  # None: the message could not be read, no case
    confirmed: Json | None  # uid -> data, on the case's first message of the batch only


@record
class UtbetalingRow:
    """The last confirmed utbetaling of one uid; ``data`` is the domain record as JSON."""

    uid: str
    klassekode: str
    periods: list[Json]
    last_line_id: str
    last_line: Json
    data: Json
    confirmed_at: datetime | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> UtbetalingRow:
        return cls(
            uid=row["uid"],
            klassekode=row["klassekode"],
            periods=list(row["periods"]),
            last_line_id=row["last_line_id"],
            last_line=row["last_line"],
            data=row["data"],
            confirmed_at=row.get("confirmed_at"),
        )


@dataclass(frozen=True, kw_only=True)
class InboundRow:
    """One message as it arrived, by original key."""

    seq: int
    original_key: str
    content_hash: str
    fagsystem: str | None
    sak_id: str | None
    body: bytes
    dryrun: bool
    state: str

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> InboundRow:
        return cls(
            seq=row["seq"],
            original_key=row["original_key"],
            content_hash=row["content_hash"],
            fagsystem=row["fagsystem"],
            sak_id=row["sak_id"],
            body=bytes(row["body"]),
            dryrun=row["dryrun"],
            state=row["state"],
        )


@dataclass(frozen=True, kw_only=True)
class OrderHead:
    """What booking a receipt reads of an order: not its XML, which is stored out of line and
    would be fetched from the TOAST table for every receipt only to be dropped, nor its details,
    which ``book_receipts`` puts in the statuses it stores (decoded and encoded again here,
    they were a tenth of booking a receipt)."""

    id: uuid.UUID
    fagsystem: str
    sak_id: str
    original_key: str
    uids: tuple[str, ...]
    state: str

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> OrderHead:
        return cls(**_head(row))


def _head(row: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("id", "fagsystem", "sak_id", "original_key", "state")
    return {**{k: row[k] for k in keys}, "uids": tuple(row["uids"])}


@dataclass(frozen=True, kw_only=True)
class OrderRow(OrderHead):
    """One payment order (oppdrag): exactly the XML sent, and where it stands."""

    details: Json
    xml: str
    sha256: str
    message_id: str
    created_at: datetime
    send_attempts: int
    sent_at: datetime | None
    receipt_code: str | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> OrderRow:
        return cls(
            **_head(row),
            details=row["details"],
            xml=row["xml"],
            sha256=row["sha256"],
            message_id=row["message_id"],
            created_at=row["created_at"],
            send_attempts=row["send_attempts"],
            sent_at=row["sent_at"],
            receipt_code=row["receipt_code"],
        )


@dataclass(frozen=True, kw_only=True)
class Outgoing:
    """What the sender reads of an order it sends (claimed, or handed to it by a receipt batch):
    what it publishes and logs. Not the details, which the claim decoded from JSON for every
    order only to drop them: a tenth of what sending one cost."""

    id: uuid.UUID
    original_key: str
    xml: str
    message_id: str
    send_attempts: int

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Outgoing:
        return cls(
            id=row["id"],
            original_key=row["original_key"],
            xml=row["xml"],
            message_id=row["message_id"],
            send_attempts=row["send_attempts"],
        )


@dataclass(frozen=True, kw_only=True)
class StatusRow:
    """One status published under an original key; ``body`` is the spec's status shape."""

    original_key: str
    status: str
    body: Json
    created_at: datetime | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> StatusRow:
        return cls(
            original_key=row["original_key"],
            status=row["status"],
            body=row["body"],
            created_at=row.get("created_at"),
        )


@dataclass(frozen=True, kw_only=True)
class StatusPage:
    """A page of the status log to publish: ``(txid, id, original_key, body as JSON text)`` in
    publishing order, and the window (two snapshots, as text) it is from (migration 0008)."""

    done: str
    upto: str
    rows: list[tuple[str, int, str, str]]
    limit: int


@record
class Submission:
    """What the intake answers: the key to follow, and whether it was seen before."""

    key: str
    duplicate: bool = False


@dataclass(frozen=True, kw_only=True)
class CaseView:
    """A case as the read API shows it."""

    fagsystem: str
    sak_id: str
    active_uids: frozenset[str] | None
    inflight_order: uuid.UUID | None
    utbetalinger: list[UtbetalingRow]
