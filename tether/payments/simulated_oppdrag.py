"""The simulated payment system's data: a ledger of line chains per case, validated like the real
one, and the simulations it computes from that ledger.

Semantics of a chain (one utbetaling): lines are applied in order; a ``NY`` line replaces what the
chain pays from its ``fom`` on with its own period, a stop line (``OPPH`` from a date) ends
everything the chain pays from that date on. ``DAG`` pays ``sats`` per weekday, ``ENG`` once on
``fom``. Nothing here does I/O; ``simulator.py`` puts it behind NATS and HTTP.
"""

from __future__ import annotations

import copy
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

from tether.payments.models import Line, Order
from tether.payments.oppdrag import (
    OppdragFormatError,
    Posting,
    SimulatedPeriod,
    build_receipt_xml,
    parse_order_xml,
)

logger = logging.getLogger(__name__)

EXISTS = "Oppdraget finnes fra før"
UNKNOWN_CASE = "OPPDRAGET/FAGSYSTEM-ID finnes ikke fra før"


class OppdragFault(StrEnum):
    """What the payment system can be told to do instead of answering honestly."""

    NONE = "none"
    WARNING = "04"  # accepted, with a warning
    FUNCTIONAL = "08"  # every order refused (functional error), nothing applied
    TECHNICAL = "12"  # every order refused (technical error), nothing applied
    UNTRIMMED = "08-untrimmed"  # as 08, with alvorlighetsgrad "08 " as the real one pads it
    SLOW = "slow"  # receipts (and HTTP answers) after ``slow_s``
    SILENT = "silent"  # orders applied, no receipt sent
    DUPLICATE = "duplicate"  # every receipt sent twice
    DOWN = "down"  # nothing consumed, HTTP port closed


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """The receipt the payment system gives one order."""

    alvorlighetsgrad: str
    kode_melding: str | None = None
    beskr_melding: str | None = None

    @property
    def accepted(self) -> bool:
        return self.alvorlighetsgrad.strip() in ("00", "04")


OK = Verdict(alvorlighetsgrad="00")
WARNING = Verdict(alvorlighetsgrad="04", kode_melding="B110004W", beskr_melding="Simulert advarsel")
_FAULT_VERDICTS: dict[str, Verdict] = {
    OppdragFault.FUNCTIONAL: Verdict(
        alvorlighetsgrad="08", kode_melding="B110008F", beskr_melding="Simulert funksjonell feil"
    ),
    OppdragFault.UNTRIMMED: Verdict(
        alvorlighetsgrad="08 ", kode_melding="B110008F", beskr_melding="Simulert funksjonell feil"
    ),
    OppdragFault.TECHNICAL: Verdict(
        alvorlighetsgrad="12", kode_melding="B110012T", beskr_melding="Simulert teknisk feil"
    ),
}


def refused(text: str) -> Verdict:
    return Verdict(alvorlighetsgrad="08", kode_melding="B110008F", beskr_melding=text)


@dataclass
class Case:
    """One case's chains: per chain the ordered events, and which chain each line id is in."""

    fagsystem_id: str
    chains: dict[str, list[Line]] = field(default_factory=dict)
    chain_of: dict[str, str] = field(default_factory=dict)
    klassekode_of: dict[str, str] = field(default_factory=dict)

    def apply(self, lines: Iterable[Line]) -> None:
        for line in lines:
            if line.is_stop:
                chain = self.chain_of[line.delytelse_id]
            else:
                chain = (
                    self.chain_of[line.ref_delytelse_id]
                    if line.ref_delytelse_id
                    else (line.delytelse_id)
                )
                self.chain_of[line.delytelse_id] = chain
                self.klassekode_of[chain] = line.kode_klassifik
            self.chains.setdefault(chain, []).append(line)

    def payments(self, chain: str) -> dict[date, int]:
        """What the chain pays per day now."""
        days: dict[date, int] = {}
        for line in self.chains.get(chain, []):
            start = line.dato_status_fom if line.is_stop else line.fom
            assert start is not None
            days = {d: v for d, v in days.items() if d < start}
            if not line.is_stop:
                days.update(_line_days(line))
        return days


def _uuid_hex(key: str) -> str:
    try:
        return uuid.UUID(key).hex
    except ValueError:
        return key


def _line_days(line: Line) -> dict[date, int]:
    if line.type_sats == "ENG":
        return {line.fom: line.sats}
    found, day = {}, line.fom
    while day <= line.tom:
        if day.weekday() < 5:
            found[day] = line.sats
        day += timedelta(days=1)
    return found


@dataclass(frozen=True, kw_only=True)
class Received:
    """One order as the payment system saw it, and its answer."""

    nokkel_avstemming: str
    msg_id: str | None
    fagsystem_id: str
    verdict: Verdict
    applied: bool
    received_at: datetime

    def receipt(self, order_xml: str | bytes) -> str:
        """The receipt for this order, built from (a copy of) its XML: nothing kept per order."""
        v = self.verdict
        return build_receipt_xml(order_xml, v.alvorlighetsgrad, v.kode_melding, v.beskr_melding)

    def to_json(self) -> dict[str, object]:
        return {
            "nokkelAvstemming": self.nokkel_avstemming,
            "msgId": self.msg_id,
            "fagsystemId": self.fagsystem_id,
            "alvorlighetsgrad": self.verdict.alvorlighetsgrad,
            "kodeMelding": self.verdict.kode_melding,
            "beskrMelding": self.verdict.beskr_melding,
            "applied": self.applied,
            "receivedAt": self.received_at.isoformat(),
        }


class Ledger:
    """Every case the payment system holds, and every order it has received (by key)."""

    def __init__(self) -> None:
        self.cases: dict[str, Case] = {}
        self.orders: dict[str, Received] = {}
        self.by_msg_id: dict[str, str] = {}

    def check(self, order: Order) -> Verdict:
        """The real system's checks, first failure wins; ``00`` when the order can be applied."""
        case = self.cases.get(order.fagsystem_id)
        if order.kode_endring == "NY" and case is not None:
            return refused(EXISTS)
        if order.kode_endring != "NY" and case is None:
            return refused(UNKNOWN_CASE)
        known = set(case.chain_of) if case else set()
        for line in order.lines:
            if line.is_stop:
                if line.delytelse_id not in known or line.dato_status_fom is None:
                    return refused(f"Delytelse {line.delytelse_id} finnes ikke")
                continue
            if line.delytelse_id in known:
                return refused(f"Delytelse-ID {line.delytelse_id} finnes fra før")
            if line.ref_delytelse_id is not None and line.ref_delytelse_id not in known:
                return refused(f"Referert delytelse {line.ref_delytelse_id} finnes ikke")
            known.add(line.delytelse_id)
        return OK

    def apply(self, order: Order) -> None:
        case = self.cases.setdefault(order.fagsystem_id, Case(fagsystem_id=order.fagsystem_id))
        case.apply(order.lines)

    def find(self, key: str) -> Received | None:
        """An order by its nokkelAvstemming or the message id it came with; a UUID matches in
        either spelling (with dashes or as 32 hex digits)."""
        for candidate in dict.fromkeys((key, _uuid_hex(key))):
            found = self.orders.get(candidate) or self.orders.get(self.by_msg_id.get(candidate, ""))
            if found is not None:
                return found
        return None

    def receive(
        self, xml: str | bytes, msg_id: str | None, fault: str
    ) -> tuple[Received, bool] | None:
        """Judge, apply (unless refused) and remember one order; ``None`` if unreadable.

        An order seen before (same message id or nokkelAvstemming) is not applied again: its
        first answer comes back with ``False`` ("not new"), as an idempotent consumer would.
        """
        seen = self.find(msg_id) if msg_id else None
        if seen is not None:
            return seen, False
        try:
            order = parse_order_xml(xml)
        except OppdragFormatError as exc:
            logger.warning("unreadable order: %s", exc, extra={"action": "oppdrag_unreadable"})
            return None
        if msg_id:
            self.by_msg_id[msg_id] = order.nokkel_avstemming
        if order.nokkel_avstemming in self.orders:
            return self.orders[order.nokkel_avstemming], False
        verdict = _FAULT_VERDICTS.get(fault) or self.check(order)
        if fault == OppdragFault.WARNING and verdict.accepted:
            verdict = WARNING
        if verdict.accepted:
            self.apply(order)
        received = Received(
            nokkel_avstemming=order.nokkel_avstemming,
            msg_id=msg_id,
            fagsystem_id=order.fagsystem_id,
            verdict=verdict,
            applied=verdict.accepted,
            received_at=datetime.now(UTC),
        )
        self.orders[order.nokkel_avstemming] = received
        return received, True

    def simulate(self, order: Order) -> tuple[Verdict, list[SimulatedPeriod]]:
        """Per chain the order touches: what it paid, what it would pay, and the postings."""
        verdict = self.check(order)
        if not verdict.accepted:
            return verdict, []
        before = self.cases.get(order.fagsystem_id) or Case(fagsystem_id=order.fagsystem_id)
        after = copy.deepcopy(before)
        after.apply(order.lines)
        chains = dict.fromkeys(after.chain_of[line.delytelse_id] for line in order.lines)
        return verdict, [p for chain in chains if (p := _period(before, after, chain)) is not None]

    def view(self, fagsystem_id: str) -> dict[str, object] | None:
        """A case as JSON: per chain its lines and what it pays per day now."""
        case = self.cases.get(fagsystem_id)
        if case is None:
            return None
        return {
            "fagsystemId": fagsystem_id,
            "chains": [
                {
                    "chain": chain,
                    "klassekode": case.klassekode_of.get(chain),
                    "lines": [line.delytelse_id for line in lines],
                    "total": sum(case.payments(chain).values()),
                    "days": {d.isoformat(): v for d, v in sorted(case.payments(chain).items())},
                }
                for chain, lines in case.chains.items()
            ],
        }


def _period(before: Case, after: Case, chain: str) -> SimulatedPeriod | None:
    old, new = before.payments(chain), after.payments(chain)
    changed = sorted(d for d in old.keys() | new.keys() if old.get(d) != new.get(d))
    if not changed:
        return None
    fom, tom = changed[0], changed[-1]
    paid = sum(v for d, v in old.items() if fom <= d <= tom)
    pays = sum(v for d, v in new.items() if fom <= d <= tom)
    klassekode = after.klassekode_of.get(chain, "")
    postings = []
    if pays:
        postings.append(Posting(type="YTEL", klassekode=klassekode, belop=pays))
    if paid:
        postings.append(Posting(type="YTEL", klassekode=klassekode, belop=-paid))
    if pays < paid:
        postings.append(Posting(type="FEIL", klassekode=klassekode, belop=paid - pays))
    return SimulatedPeriod(
        fom=fom,
        tom=tom,
        klassekode=klassekode,
        tidligere_utbetalt=paid,
        nytt_belop=pays,
        posteringer=tuple(postings),
    )
