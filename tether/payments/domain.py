"""The payment rules, pure: split a message into utbetalinger, validate, diff against the case's
confirmed state, and build the one order (lines, status details, candidate state) it needs.

No I/O here; ``plan`` is the whole pipeline and everything it returns is deterministic in its
inputs (``now`` only sets the order's timestamp).
"""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from operator import attrgetter, gt, itemgetter
from typing import Any

from tether.core.records import record
from tether.payments.lines import build_order, details
from tether.payments.models import (
    FAGSYSTEM,
    KLASSEKODE_OF,
    MAX_ID_LENGTH,
    TYPE_SATS_OF,
    CaseState,
    Change,
    ChangeKind,
    ConfirmedUtbetaling,
    DagpengerDay,
    DagpengerMessage,
    Details,
    Diff,
    Line,
    Order,
    PaymentValidationError,
    Period,
    Receipt,
    ReceiptCode,
    TypeSats,
    Utbetaling,
    Utbetalingstype,
)

__all__ = [
    "CaseState",
    "Diff",
    "Plan",
    "diff",
    "plan",
    "receipt_outcome",
    "split",
    "validate",
    "validate_message",
]

#: Namespace of utbetaling uids: uuid5(NAMESPACE_URL, "urn:tether:payments:utbetaling").
UID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:tether:payments:utbetaling")
#: Joins the uid's fields; the parser refuses control characters, so it cannot occur in them.
UID_SEPARATOR = "\x00"
_UID_PREFIX = UID_NAMESPACE.bytes
MAX_WEEKDAY_SPAN_DAYS = 1100
_DATO = itemgetter("dato")
_PERIOD_ORDER = attrgetter("fom", "tom", "belop")
_FOM, _TOM, _BELOP = attrgetter("fom"), attrgetter("tom"), attrgetter("belop")


# --- split ----------------------------------------------------------------------------------


def uid_for(fagsystem: str, sak_id: str, meldeperiode: str, klassekode: str) -> str:
    """The utbetaling's id: a name-based UUID (SHA-1, 122 bits) over the NUL-joined fields,
    ``str(uuid.uuid5(UID_NAMESPACE, name))`` written without the ``UUID`` object, which cost
    twice the hash."""
    name = UID_SEPARATOR.join((fagsystem, sak_id, meldeperiode, klassekode))
    if name.count(UID_SEPARATOR) != 3:
        raise ValueError("uid fields must not contain NUL")
    digest = bytearray(hashlib.sha1(_UID_PREFIX + name.encode()).digest()[:16])
    digest[6] = digest[6] & 0x0F | 0x50  # version 5
    digest[8] = digest[8] & 0x3F | 0x80  # the RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _bridges(prev: date, nxt: date, paid: set[date]) -> bool:
    """A run goes on over a weekend only when no day in between is paid (at another amount):
    the spec's rule taken literally would make overlapping periods (Friday-Monday at 100 over a
    Saturday at 200), and the later line would stop paying the Monday."""
    return all(prev + timedelta(days=k) not in paid for k in range(1, (nxt - prev).days))


def compress(days: Iterable[DagpengerDay]) -> tuple[Period, ...]:
    """Days -> periods: group by (amount, rate), split where the next date is not contiguous."""
    groups: dict[tuple[int, int], list[date]] = defaultdict(list)
    ordered = sorted(days, key=_DATO)
    for day in ordered:
        groups[(day["utbetaltBeløp"], day["sats"])].append(day["dato"])
    paid = {day["dato"] for day in ordered} if len(groups) > 1 else set()
    periods: list[Period] = []
    for (belop, sats), dates in groups.items():
        start = prev = dates[0]
        for current in dates[1:]:
            # contiguous: the next calendar day, or the next weekday (Friday or Saturday ->
            # Monday); written here, not called: a call per day cost more than the test
            gap = (current - prev).days
            contiguous = gap == 1 or (gap in (2, 3) and current.weekday() == 0)
            if not contiguous or (paid and not _bridges(prev, current, paid)):
                periods.append(Period(fom=start, tom=prev, belop=belop, vedtakssats=sats))
                start = current
            prev = current
        periods.append(Period(fom=start, tom=prev, belop=belop, vedtakssats=sats))
    if len(periods) > 1:
        periods.sort(key=_PERIOD_ORDER)
    return tuple(periods)


def split(msg: DagpengerMessage) -> list[Utbetaling]:
    """One utbetaling per (meldeperiode, klassekode) with a paid day; sorted by first fom."""
    groups: dict[tuple[str, Utbetalingstype], list[DagpengerDay]] = defaultdict(list)
    for day in msg.utbetalinger:
        if day["utbetaltBeløp"] > 0:
            groups[(day["meldeperiode"], day["utbetalingstype"])].append(day)
    found = []
    for (meldeperiode, utbetalingstype), days in groups.items():
        klassekode = KLASSEKODE_OF[utbetalingstype]
        found.append(
            Utbetaling(
                uid=uid_for(FAGSYSTEM, msg.sak_id, meldeperiode, klassekode),
                fagsystem=FAGSYSTEM,
                sak_id=msg.sak_id,
                behandling_id=msg.behandling_id,
                ident=msg.ident,
                meldeperiode=meldeperiode,
                klassekode=klassekode,
                type_sats=TYPE_SATS_OF[klassekode],
                vedtakstidspunkt=msg.vedtakstidspunkt,
                saksbehandler=msg.saksbehandler,
                beslutter=msg.beslutter,
                periods=compress(days),
            )
        )
    return sorted(found, key=lambda u: (u.periods[0].fom, u.klassekode, u.uid))


# --- validation -----------------------------------------------------------------------------


def _bad(msg: str, status_code: int = 400) -> PaymentValidationError:
    return PaymentValidationError(status_code, msg)


def validate_utbetaling(u: Utbetaling) -> None:
    """The rules on one utbetaling's periods (400). Read with ``map`` (C loops): a generator or
    set comprehension per rule was a Python call each, most of the rules' cost."""
    periods = u.periods
    if not periods:
        raise _bad("Utbetalingen mangler perioder")
    foms, toms = list(map(_FOM, periods)), list(map(_TOM, periods))
    if any(map(gt, foms, toms)):
        raise _bad("fom kan ikke være etter tom")
    if len(set(foms)) < len(periods):
        raise _bad("Kan ikke sende inn duplikate perioder (samme fom)")
    if len(set(toms)) < len(periods):
        raise _bad("Kan ikke sende inn duplikate perioder (samme tom)")
    if 0 in map(_BELOP, periods):
        raise _bad("beløp kan ikke være 0")
    first, last = min(foms), max(toms)
    if u.type_sats == TypeSats.ENG and first.year != last.year:
        raise _bad("Engangsutbetalinger kan ikke strekke seg over årsskiftet")
    if u.type_sats == TypeSats.DAG and (last - first).days > MAX_WEEKDAY_SPAN_DAYS:
        raise _bad(f"Perioden kan ikke strekke seg over mer enn {MAX_WEEKDAY_SPAN_DAYS} dager")


def _locked(new: Utbetaling, old: ConfirmedUtbetaling) -> None:
    pairs = (
        ("sakId", new.sak_id, old.sak_id),
        ("ident", new.ident, old.ident),
        ("klassekode", new.klassekode, old.klassekode),
        ("typeSats", new.type_sats, old.type_sats),
    )
    for name, now, before in pairs:
        if now != before:
            raise _bad(f"Kan ikke endre '{name}'")


def validate(
    msg: DagpengerMessage, utbetalinger: Sequence[Utbetaling], state: CaseState | None
) -> None:
    """Every rule of the spec, in order; the first broken one raises ``PaymentValidationError``."""
    validate_message(msg, utbetalinger)
    validate_against(msg, utbetalinger, state)


def _java_length(text: str) -> int:
    """Length as the reference counts it (a JVM string's UTF-16 units): a character outside
    the Basic Multilingual Plane, an emoji, counts two, so the same id is refused by both."""
    return len(text) if text.isascii() else len(text.encode("utf-16-le")) // 2


def validate_message(msg: DagpengerMessage, utbetalinger: Sequence[Utbetaling]) -> None:
    """The rules that need no case (they come first in the spec's order): checked at intake,
    before a case is locked or created, so a message that breaks one leaves no case behind."""
    if _java_length(msg.sak_id) > MAX_ID_LENGTH:
        raise _bad(f"sakId kan ikke være lengre enn {MAX_ID_LENGTH} tegn")
    if _java_length(msg.behandling_id) > MAX_ID_LENGTH:
        raise _bad(f"behandlingId kan ikke være lengre enn {MAX_ID_LENGTH} tegn")
    for u in utbetalinger:
        validate_utbetaling(u)


def validate_against(
    msg: DagpengerMessage, utbetalinger: Sequence[Utbetaling], state: CaseState | None
) -> None:
    """The rules on the case's confirmed state: locked fields, and stops of known uids."""
    if state is None:
        return
    for u in utbetalinger:
        old = state.confirmed.get(u.uid)
        if old is not None:
            _locked(u, old)
    present = {u.uid for u in utbetalinger}
    for uid in sorted((state.active_uids or frozenset()) - present):
        gone = state.confirmed.get(uid)
        if gone is None:
            raise _bad(f"Fant ikke utbetaling {uid} å opphøre", 404)
        if gone.ident != msg.ident:  # the stop line and the order header would carry it
            raise _bad("Kan ikke endre 'ident'")


# --- diff -----------------------------------------------------------------------------------


def diff(utbetalinger: Sequence[Utbetaling], state: CaseState | None) -> Diff:
    """Create / update / unchanged per uid in the message, then delete per active uid missing."""
    active = (state.active_uids or frozenset()) if state else frozenset()
    confirmed: Mapping[str, ConfirmedUtbetaling] = state.confirmed if state else {}
    changes: list[Change] = []
    for u in utbetalinger:
        old = confirmed.get(u.uid)
        if old is None or u.uid not in active:
            kind = ChangeKind.CREATE
        elif old.periods == u.periods:
            kind = ChangeKind.UNCHANGED
        else:
            kind = ChangeKind.UPDATE
        changes.append(Change(kind=kind, uid=u.uid, new=u, old=old))
    present = {u.uid for u in utbetalinger}
    gone = sorted(active - present, key=lambda uid: (_first_fom(confirmed.get(uid)), uid))
    changes += [
        Change(kind=ChangeKind.DELETE, uid=uid, new=None, old=confirmed.get(uid)) for uid in gone
    ]
    return Diff(changes=tuple(changes))


def _first_fom(old: ConfirmedUtbetaling | None) -> date:
    return old.periods[0].fom if old and old.periods else date.min


# --- the candidate state and the whole pipeline ----------------------------------------------


def _confirmed(u: Utbetaling, last: Line) -> ConfirmedUtbetaling:
    return ConfirmedUtbetaling(
        uid=u.uid,
        sak_id=u.sak_id,
        ident=u.ident,
        klassekode=u.klassekode,
        type_sats=u.type_sats,
        periods=u.periods,
        last_line_id=last.delytelse_id,
        last_line_fom=last.fom,
        last_line_tom=last.tom,
        last_line_sats=last.sats,
        last_line_vedtakssats=last.vedtakssats,
    )


def candidate(state: CaseState | None, changes: Diff, order: Order | None) -> CaseState:
    """The case state that holds once the payment system accepts ``order`` (receipt 00/04).

    Created and updated uids take their new periods and the chain's last line; a deleted uid
    leaves the active set but keeps its entry (no periods, the stopped line) for a come-back.
    """
    if order is None:
        return state if state is not None else CaseState(active_uids=None)
    confirmed = dict(state.confirmed) if state else {}
    active = set(state.active_uids or ()) if state else set()
    last: dict[str, Line] = {line.uid: line for line in order.lines}  # the last line wins
    for change in changes.changes:
        line = last.get(change.uid)
        if line is None:
            continue
        if change.new is not None:
            confirmed[change.uid] = _confirmed(change.new, line)
            active.add(change.uid)
        elif change.old is not None:
            confirmed[change.uid] = replace(change.old, periods=())
            active.discard(change.uid)
    return CaseState(active_uids=frozenset(active), confirmed=confirmed, has_order_before=True)


@record
class Plan:
    """Everything one message leads to. ``order is None``: nothing changed (bare OK)."""

    utbetalinger: tuple[Utbetaling, ...]
    diff: Diff
    order: Order | None
    details: Details | None
    candidate: CaseState
    uids: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return self.order is not None

    @property
    def state(self) -> CaseState:
        """Alias of ``candidate``."""
        return self.candidate


def plan(
    msg: DagpengerMessage,
    state: CaseState | None,
    *,
    now: datetime,
    nokkel: str | None = None,
    checked: Sequence[Utbetaling] | None = None,
) -> Plan:
    """Split, validate (raises ``PaymentValidationError``), diff, and build the order.
    ``checked``: the message's split, its case-free rules already checked (``validate_message``
    at intake), so neither is done twice."""
    if checked is None:
        utbetalinger = split(msg)
        validate(msg, utbetalinger, state)
    else:
        utbetalinger = list(checked)
        validate_against(msg, utbetalinger, state)
    changes = diff(utbetalinger, state)
    order = build_order(msg, state, changes, now=now, nokkel=nokkel)
    return Plan(
        utbetalinger=tuple(utbetalinger),
        diff=changes,
        order=order,
        details=details(order) if order is not None else None,
        candidate=candidate(state, changes, order),
        uids=tuple(c.uid for c in changes.changes),
    )


RECEIPTS_DOC = "docs/payments.md#receipts"  # the payment system's verdicts, not tether's rules


def receipt_outcome(receipt: Receipt) -> tuple[str, dict[str, Any] | None]:
    """The final status of a receipt: 00 OK; 04 OK with a warning; 08 FEILET 400; else 500.
    Its ``doc`` is the receipts section: the validation doc would blame rules the message met."""
    code = receipt.alvorlighetsgrad.strip()
    text = receipt.beskr_melding or receipt.kode_melding or f"alvorlighetsgrad {code}"
    if code == ReceiptCode.OK:
        return "OK", None
    if code == ReceiptCode.WARNING:
        return "OK", {"statusCode": 200, "msg": text, "doc": RECEIPTS_DOC}
    status_code = 400 if code == ReceiptCode.FUNCTIONAL_ERROR else 500
    return "FEILET", {"statusCode": status_code, "msg": text, "doc": RECEIPTS_DOC}
