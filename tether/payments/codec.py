"""Between the pure payment rules (domain.py, oppdrag.py) and the tables and statuses.

Turns stored rows into the domain's ``CaseState``, a ``Plan`` into what intake stores (order XML,
candidate rows, status details), and builds every status body in the spec's shape
``{status, detaljer, error, simulering}`` (plus ``simulation`` for a dry run).

The order id is carried in the order's ``nokkelAvstemming`` (the UUID's 32 hex digits), which the
payment system returns unchanged in its receipt: a receipt finds its order with no side channel.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tether.core.records import record
from tether.payments.domain import plan as plan_order
from tether.payments.domain import receipt_outcome, split, validate_message
from tether.payments.models import (
    CaseState,
    ConfirmedUtbetaling,
    DagpengerMessage,
    PaymentValidationError,
    ReceiptCode,
    Utbetaling,
)
from tether.payments.models import Receipt as ModelReceipt
from tether.payments.models import parse_message as parse
from tether.payments.oppdrag import build_order_xml, parse_receipt
from tether.payments.records import CaseRow, Json, UtbetalingRow

Message = DagpengerMessage
Rejected = PaymentValidationError
StatusBody = Mapping[str, Any]
NO_POSTINGS = "no postings to show: nothing changed"
SIMULATION_DOC = "docs/payments.md#dry-run"  # why a dry run failed, and what to do

__all__ = ["CaseState", "Message", "Rejected", "StatusBody", "Utbetaling", "parse"]


@record
class Planned:
    """What intake stores for one message; ``xml is None`` means nothing changed."""

    xml: str | None
    details: StatusBody | None
    candidates: list[Json]  # the entries that change (``pay.candidate``'s data), one per uid
    uids: frozenset[str]


@dataclass(frozen=True, kw_only=True)
class Receipt:
    """A receipt reduced to what booking needs: its order, the trimmed code and the text."""

    order_id: uuid.UUID | None
    code: str
    source: ModelReceipt


def precheck(msg: DagpengerMessage) -> tuple[Utbetaling, ...]:
    """The message's split, its rules that need no case checked (ids, periods) before a case is
    locked or created: a message that breaks one is FEILET and leaves no case behind."""
    utbetalinger = tuple(split(msg))
    validate_message(msg, utbetalinger)
    return utbetalinger


def case_state(case: CaseRow | None, rows: Sequence[UtbetalingRow]) -> CaseState | None:
    """The case's confirmed state as the rules see it (None: the case never existed)."""
    if case is None or (case.active_uids is None and not case.has_order_before and not rows):
        return None
    return CaseState(
        active_uids=case.active_uids,
        confirmed={r.uid: ConfirmedUtbetaling.from_json(r.data) for r in rows},
        has_order_before=case.has_order_before,
    )


def case_state_of(case: CaseRow, confirmed: Mapping[str, Any]) -> CaseState | None:
    """``case_state`` from the intake function's uid -> data map (no per-row records)."""
    if case.active_uids is None and not case.has_order_before and not confirmed:
        return None
    return CaseState(
        active_uids=case.active_uids,
        confirmed={uid: ConfirmedUtbetaling.from_json(d) for uid, d in confirmed.items()},
        has_order_before=case.has_order_before,
    )


def plan(
    msg: DagpengerMessage,
    state: CaseState | None,
    *,
    now: datetime,
    order_id: uuid.UUID,
    max_order_bytes: int | None = None,
    checked: Sequence[Utbetaling] | None = None,
) -> Planned:
    """Split, diff and build the order; candidates are the uids whose confirmed entry changes.
    An order over ``max_order_bytes`` (what the orders queue takes) is ``Rejected`` 400: the
    broker would refuse it, and its case would wait for ever."""
    result = plan_order(msg, state, now=now, nokkel=order_id.hex, checked=checked)
    if result.order is None or result.details is None:
        return Planned(xml=None, details=None, candidates=[], uids=frozenset())
    before: Mapping[str, ConfirmedUtbetaling] = state.confirmed if state else {}
    changed: list[Json] = [
        c.to_json() for uid, c in result.candidate.confirmed.items() if before.get(uid) != c
    ]
    xml = build_order_xml(result.order)
    if max_order_bytes is not None:
        _check_order_size(xml, max_order_bytes)
    return Planned(
        xml=xml,
        details=result.details.to_json(),
        candidates=changed,
        uids=frozenset(result.candidate.active_uids or ()),
    )


def _check_order_size(xml: str, max_bytes: int) -> None:
    """Refuse an order the payment system's queue would not take (``Rejected`` 400)."""
    size = len(xml.encode())
    if size > max_bytes:
        raise Rejected(400, too_large(size, max_bytes))


def too_large(size: int, max_bytes: int) -> str:
    """Why an order is refused for its size: at planning, or by the sender for one stored
    before the limit (or under a larger one)."""
    return (
        f"the order would be {size} bytes, over the payment system's {max_bytes}: "
        "send fewer periods per message (or fewer days with their own amount)"
    )


def read_receipt(body: bytes | str) -> Receipt:
    """Decode a receipt; ``ValueError`` when it cannot be read at all."""
    parsed = parse_receipt(body)
    try:
        order_id: uuid.UUID | None = uuid.UUID(hex=parsed.nokkel_avstemming.strip())
    except ValueError:
        order_id = None
    return Receipt(order_id=order_id, code=parsed.alvorlighetsgrad.strip(), source=parsed)


def receipt_from_lookup(order_id: uuid.UUID, found: StatusBody) -> Receipt | None:
    """The verdict the payment system reports for an order, as a receipt (None: no verdict)."""
    code = found.get("alvorlighetsgrad")
    if not isinstance(code, str) or not code.strip():
        return None
    source = ModelReceipt(
        alvorlighetsgrad=code.strip(),
        kode_melding=found.get("kodeMelding"),
        beskr_melding=found.get("beskrMelding"),
        fagsystem_id=str(found.get("fagsystemId", "")),
        nokkel_avstemming=order_id.hex,
    )
    return Receipt(order_id=order_id, code=code.strip(), source=source)


# --- status bodies ------------------------------------------------------------------------------


def _body(
    status: str,
    *,
    details: StatusBody | None = None,
    error: StatusBody | None = None,
    simulering: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "status": status,
        "detaljer": details,
        "error": error,
        "simulering": simulering,
        **extra,
    }


def bare_ok() -> StatusBody:
    """Nothing changed: OK with no details, nothing sent (how duplicates are absorbed)."""
    return _body("OK")


def failed(exc: PaymentValidationError, *, simulering: bool = False) -> StatusBody:
    return _body("FEILET", error=exc.as_error(), simulering=simulering)


def internal_error(msg: str, *, simulering: bool = False) -> StatusBody:
    return _body(
        "FEILET", error={"statusCode": 500, "msg": msg, "doc": None}, simulering=simulering
    )


def unsendable(msg: str) -> tuple[str, StatusBody]:
    """An order tether will never send (too large for the queue): FEILET 400, as at planning.
    Its status and error: ``book_receipts`` stores the body, with the order's details."""
    return "FEILET", Rejected(400, msg).as_error()


def final(receipt: Receipt) -> tuple[str, StatusBody | None]:
    """The receipt's final status, 00 OK, 04 OK with a warning, 08 FEILET 400, else 500, and
    its error: ``book_receipts`` stores the body, with the order's details."""
    return receipt_outcome(receipt.source)


def simulated(details: StatusBody | None, simulation: StatusBody) -> StatusBody:
    return _body("OK", details=details, simulering=True, simulation=simulation)


def simulated_no_change() -> StatusBody:
    """A dry run that changes nothing answers explicitly, never leaves the caller waiting."""
    return _body("OK", simulering=True, simulation={"info": NO_POSTINGS, "perioder": []})


def failed_simulation(msg: str, status_code: int) -> StatusBody:
    """The simulation service could not be asked (unreachable, timed out, a broken answer)."""
    error = {"statusCode": status_code, "msg": f"simulering feilet: {msg}", "doc": SIMULATION_DOC}
    return _body("FEILET", error=error, simulering=True)


def simulation_refused(alvorlighetsgrad: str, melding: str) -> StatusBody:
    """The simulation service's verdict on the order, read as a receipt's: 08 400, else 500."""
    code = 400 if alvorlighetsgrad == ReceiptCode.FUNCTIONAL_ERROR else 500
    msg = f"simulering avvist ({alvorlighetsgrad}): {melding}"
    error = {"statusCode": code, "msg": msg, "doc": SIMULATION_DOC}
    return _body("FEILET", error=error, simulering=True)


def simulation_busy(sak_id: str, order_id: uuid.UUID) -> StatusBody:
    """A dry run on a case whose order is still at the payment system (``dryrun``): 409."""
    msg = (
        f"sak {sak_id} has an order at the payment system waiting for its receipt "
        f"(order {order_id}): the case's state changes when it comes, so a simulation now "
        "would be against the wrong state; send the dry run again (a new key) once the "
        "case's messages are final"
    )
    error = {"statusCode": 409, "msg": msg, "doc": SIMULATION_DOC}
    return _body("FEILET", error=error, simulering=True)


def waiting() -> StatusBody:
    """Logged, queued behind an order of its case still at the payment system: no status yet."""
    return _body("VENTER")
