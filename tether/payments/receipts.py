"""Receipt booking: a batch's receipts in one set-based statement, and the orders its drain
plans as the local sender gets them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from tether.core.db import Connection
from tether.payments import codec, repository
from tether.payments.records import CaseRow, OrderHead, Outgoing


def case_key(order: OrderHead) -> tuple[str, str]:
    return (order.fagsystem, order.sak_id)


class Booking:
    """A batch's receipts booked by one ``book_receipts`` statement: 00/04 make the order's
    candidates the confirmed state and set the case's uids, 08/12 leave the previous state in
    force; either way the order is finished, the case freed and the final status stored (after
    ``HOS_OPPDRAG`` when the receipt beat the sender's bookkeeping)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.cases: set[tuple[str, str]] = set()
        self.counted: list[str] = []
        self.orders: set[uuid.UUID] = set()  # booked by this batch: a second receipt is a duplicate

    async def add(
        self, conn: Connection, order: OrderHead, receipt: codec.Receipt, case: CaseRow
    ) -> tuple[str, CaseRow]:
        """Queue one booking; returns the outcome and the case row as the booking leaves it."""
        hos = order.state == "MOTTATT"
        text = receipt.source.beskr_melding
        final = codec.final(receipt)
        state = await self._queue(conn, order, final, code=receipt.code, text=text, hos=hos)
        if state == "OK":
            case = _freed(case, frozenset(order.uids), has_order_before=True)
        elif case.inflight_order == order.id:
            case = _freed(case, case.active_uids, has_order_before=case.has_order_before)
        return state.lower(), case

    async def refuse(
        self, conn: Connection, order: OrderHead, error: str, case: CaseRow
    ) -> CaseRow:
        """Queue the end of an order tether never sent and never will (too large for the
        queue): ``FEILET`` 400 under its message's key, as an 08 would leave it (previous state
        in force, case freed), but no receipt (no code), no sent time; ``last_error`` says why."""
        await self._queue(conn, order, codec.unsendable(error), code=None, text=error, hos=False)
        if case.inflight_order != order.id:
            return case
        return _freed(case, case.active_uids, has_order_before=case.has_order_before)

    async def _queue(
        self,
        conn: Connection,
        order: OrderHead,
        final: tuple[str, codec.StatusBody | None],
        *,
        code: str | None,
        text: str | None,
        hos: bool,
    ) -> str:
        """One row of ``book_receipts`` (final status and error; ``hos``: ``HOS_OPPDRAG``
        first); returns the final status it stores."""
        if case_key(order) in self.cases:  # a case booked twice: in order, as one by one would
            await self.flush(conn)
        state, error = final
        self.rows.append(
            {
                "ord": len(self.rows),
                "id": str(order.id),
                "ok": state == "OK",
                "fagsystem": order.fagsystem,
                "sak_id": order.sak_id,
                "uids": sorted(order.uids),
                "state": state,
                "code": code,
                "text": text,
                "original_key": order.original_key,
                "hos": hos,
                "error": error,
            }
        )
        self.cases.add(case_key(order))
        self.orders.add(order.id)
        self.counted += ["HOS_OPPDRAG", state] if hos else [state]
        return state

    async def flush(
        self, conn: Connection, free: Sequence[tuple[str, str]] = ()
    ) -> set[tuple[str, str]] | None:
        """Store the queued bookings; returns the cases a message waits on among ``free``'s sak
        ids (``repository.book_receipts``; None: nothing was queued, so nothing was read)."""
        waiting = None
        if self.rows:
            waiting = await repository.book_receipts(conn, receipts=self.rows, free=free)
        self.rows, self.cases = [], set()
        return waiting


def _freed(case: CaseRow, uids: frozenset[str] | None, *, has_order_before: bool) -> CaseRow:
    """The case without an order in flight (built, not ``dataclasses.replace``d: a receipt
    each, and replace introspects the fields every call)."""
    return CaseRow(
        fagsystem=case.fagsystem,
        sak_id=case.sak_id,
        active_uids=uids,
        has_order_before=has_order_before,
        inflight_order=None,
    )


def planned_order(planned: dict[str, Any]) -> Outgoing:
    """An order as ``store_intake`` stored it claimed (one attempt, not sent yet)."""
    return Outgoing(
        id=uuid.UUID(planned["id"]),
        original_key=planned["original_key"],
        xml=planned["xml"],
        message_id=planned["id"],
        send_attempts=1,
    )
