"""Records of the payments domain: the benefit system's message, utbetalinger, lines and orders.

Amounts are whole kroner (``int``), as the reference sends them. Everything here is immutable;
the rules that build these records live in ``domain.py``.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import ConfigDict, Field, ValidationError, with_config
from typing_extensions import TypedDict

from tether.core.records import member, record
from tether.core.wire import WireModel, extra_keys, first_error, note_unknown_fields

FAGSYSTEM = "DAGPENGER"
KODE_FAGOMRAADE = "DP"
MAX_ID_LENGTH = 30
# days a message may list: ten years of every calendar day and a ferietillegg a year, while an
# entitlement runs 104 weeks and an utbetaling spans 1100 days at most (docs: validation)
MAX_DAYS = 3_700
MAX_AMOUNT = 2**32 - 1  # the reference reads amounts as unsigned 32-bit: larger is no amount
DOC = "docs/payments.md#validation"  # where each rule is explained
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class PaymentValidationError(Exception):
    """A message the service refuses: becomes ``FEILET`` with ``status_code``, ``msg``, ``doc``."""

    def __init__(self, status_code: int, msg: str, doc: str = DOC) -> None:
        super().__init__(msg)
        self.status_code = status_code
        self.msg = msg
        self.doc = doc

    def as_error(self) -> dict[str, Any]:  # the ``error`` object of a status
        return {"statusCode": self.status_code, "msg": self.msg, "doc": self.doc}


class Utbetalingstype(StrEnum):
    DAGPENGER, FERIETILLEGG = "Dagpenger", "DagpengerFerietillegg"


class Klassekode(StrEnum):
    DAGPENGER = "DAGPENGER"  # weekday rate
    DAGPENGERFERIE = "DAGPENGERFERIE"  # one-off


class TypeSats(StrEnum):
    DAG, ENG = "DAG", "ENG"


KLASSEKODE_OF = {
    Utbetalingstype.DAGPENGER: Klassekode.DAGPENGER,
    Utbetalingstype.FERIETILLEGG: Klassekode.DAGPENGERFERIE,
}
TYPE_SATS_OF = {Klassekode.DAGPENGER: TypeSats.DAG, Klassekode.DAGPENGERFERIE: TypeSats.ENG}


# --- input ----------------------------------------------------------------------------------


@with_config(ConfigDict(extra="allow"))  # an extra field stays in its day ("belop" too)
class DagpengerDay(TypedDict):
    # One day of the message, as the parser reads it: a dict read by the rules by its wire
    # names, not a model (a model per day cost 90k instructions a message more: pydantic built
    # each, and an attribute is read dearer than a key). Not a docstring: the OpenAPI text.
    meldeperiode: Annotated[str, Field(min_length=1)]
    dato: date
    sats: Annotated[int, Field(ge=0, le=MAX_AMOUNT)]
    utbetaltBeløp: Annotated[int, Field(ge=0, le=MAX_AMOUNT)]
    utbetalingstype: Utbetalingstype


DAY_FIELDS = DagpengerDay.__required_keys__


@record
class DagpengerMessage:
    """The whole case as the benefit system sends it (every reporting period so far)."""

    dryrun: bool
    sak_id: str
    behandling_id: str
    ident: str
    vedtakstidspunkt: datetime
    saksbehandler: str = "dagpenger"
    beslutter: str = "dagpenger"
    utbetalinger: tuple[DagpengerDay, ...] = ()


class MessageIn(WireModel):  # the wire shape ``parse_message`` reads (the API documents it)
    dryrun: bool = Field(default=False, strict=True)  # "yes" is no way to ask for a simulation
    sakId: str = Field(min_length=1)
    behandlingId: str = Field(min_length=1)
    ident: str = Field(min_length=1)
    vedtakstidspunktet: str
    saksbehandler: str | None = None
    beslutter: str | None = None
    utbetalinger: list[DagpengerDay] = Field(default_factory=list, max_length=MAX_DAYS)


def _local_time(raw: str) -> datetime:
    """ISO local date-time, a trailing ``Z`` allowed; an offset (dropped, it would move the
    decision, maybe to another day) or a bare date is refused."""
    text = raw[:-1] if raw.endswith(("Z", "z")) else raw
    with contextlib.suppress(ValueError):
        if (moment := datetime.fromisoformat(text)).tzinfo is None and text[10:11] == "T":
            return moment
    msg = "vedtakstidspunktet: not an ISO local date-time (yyyy-MM-ddTHH:mm[:ss], Z allowed)"
    raise PaymentValidationError(400, msg)


@functools.lru_cache(maxsize=1 << 14)
def iso(day: date) -> str:
    """``day.isoformat()``, remembered: a message writes each of its dates some five times (its
    rows, line ids, order XML and status), and ``isoformat`` (C's printf) cost four lookups."""
    return day.isoformat()


def _clean(name: str, value: str) -> str:
    if _CONTROL.search(value):
        raise PaymentValidationError(400, f"{name}: control characters are not allowed")
    return value


def parse_message(raw: bytes | str | Mapping[str, Any]) -> DagpengerMessage:
    """Decode a message, ignoring unknown fields; anything malformed is a 400."""
    try:
        if isinstance(raw, Mapping):
            model = MessageIn.model_validate(dict(raw))
        else:
            model = MessageIn.model_validate_json(raw)
    except ValidationError as exc:
        raise PaymentValidationError(400, f"invalid message: {first_error(exc)}") from None
    except (ValueError, TypeError) as exc:  # bytes that are not UTF-8, a non-object body
        raise PaymentValidationError(400, f"invalid message: {exc}") from None
    extra = extra_keys("utbetalinger", model.utbetalinger, DAY_FIELDS)
    note_unknown_fields("dagpenger", model, also=extra)
    for meldeperiode in {d["meldeperiode"] for d in model.utbetalinger}:
        _clean("meldeperiode", meldeperiode)
    days = tuple(model.utbetalinger)
    return DagpengerMessage(
        dryrun=model.dryrun,
        sak_id=_clean("sakId", model.sakId),
        behandling_id=_clean("behandlingId", model.behandlingId),
        ident=_clean("ident", model.ident),
        vedtakstidspunkt=_local_time(model.vedtakstidspunktet),
        saksbehandler=model.saksbehandler or "dagpenger",
        beslutter=model.beslutter or "dagpenger",
        utbetalinger=days,
    )


# --- utbetalinger and the case state ----------------------------------------------------------


@record(order=True)
class Period:
    """A run of days with one amount and rate; ``tom`` inclusive."""

    fom: date
    tom: date
    belop: int
    vedtakssats: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "fom": iso(self.fom),
            "tom": iso(self.tom),
            "beløp": self.belop,
            "vedtakssats": self.vedtakssats,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Period:
        return cls(
            fom=date.fromisoformat(raw["fom"]),
            tom=date.fromisoformat(raw["tom"]),
            belop=int(raw["beløp"]),
            vedtakssats=raw.get("vedtakssats"),
        )


@record
class Utbetaling:
    """What the message says should be paid for one (meldeperiode, klassekode) of a case."""

    uid: str
    fagsystem: str
    sak_id: str
    behandling_id: str
    ident: str
    meldeperiode: str
    klassekode: Klassekode
    type_sats: TypeSats
    vedtakstidspunkt: datetime
    saksbehandler: str
    beslutter: str
    periods: tuple[Period, ...]


@record
class ConfirmedUtbetaling:
    """What the payment system confirmed for one uid: its periods and the chain's last line.

    A deleted uid keeps its entry with ``periods == ()``: the chain (and its last line id) is what
    a later come-back of the same uid continues."""

    uid: str
    sak_id: str
    ident: str
    klassekode: Klassekode
    type_sats: TypeSats
    periods: tuple[Period, ...]
    last_line_id: str
    last_line_fom: date
    last_line_tom: date
    last_line_sats: int
    last_line_vedtakssats: int | None

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe form for storage (``from_json`` reads it back)."""
        return {
            "uid": self.uid,
            "sakId": self.sak_id,
            "ident": self.ident,
            "klassekode": str(self.klassekode),
            "typeSats": str(self.type_sats),
            "perioder": [p.to_json() for p in self.periods],
            "lastLineId": self.last_line_id,
            "lastLineFom": iso(self.last_line_fom),
            "lastLineTom": iso(self.last_line_tom),
            "lastLineSats": self.last_line_sats,
            "lastLineVedtakssats": self.last_line_vedtakssats,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ConfirmedUtbetaling:
        return cls(
            uid=raw["uid"],
            sak_id=raw["sakId"],
            ident=raw["ident"],
            klassekode=member(Klassekode, raw["klassekode"]),
            type_sats=member(TypeSats, raw["typeSats"]),
            periods=tuple(Period.from_json(p) for p in raw["perioder"]),
            last_line_id=raw["lastLineId"],
            last_line_fom=date.fromisoformat(raw["lastLineFom"]),
            last_line_tom=date.fromisoformat(raw["lastLineTom"]),
            last_line_sats=int(raw["lastLineSats"]),
            last_line_vedtakssats=raw.get("lastLineVedtakssats"),
        )


@record
class CaseState:
    """A case as the payment system confirmed it.

    ``active_uids is None``: the case never paid. An empty set: it paid, nothing is active now.
    ``confirmed`` holds every uid ever confirmed, deleted ones included (for chaining).
    ``has_order_before``: the payment system accepted an order on this case (next is ``ENDR``)."""

    active_uids: frozenset[str] | None
    confirmed: Mapping[str, ConfirmedUtbetaling] = field(default_factory=dict)
    has_order_before: bool = False


class ChangeKind(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    UNCHANGED = "unchanged"


@record
class Change:
    """What one uid needs. ``old`` is the confirmed utbetaling (also for a come-back create)."""

    kind: ChangeKind
    uid: str
    new: Utbetaling | None
    old: ConfirmedUtbetaling | None


@record
class Diff:
    changes: tuple[Change, ...]

    @property
    def changed(self) -> bool:
        return any(c.kind != ChangeKind.UNCHANGED for c in self.changes)


# --- the order ------------------------------------------------------------------------------


@record
class Line:
    """One ``oppdrags-linje-150``. A stop line has ``kode_status_linje == "OPPH"``."""

    uid: str
    kode_endring_linje: str  # NY | ENDR
    kode_status_linje: str | None  # OPPH on stop lines
    dato_status_fom: date | None
    vedtak_id: date
    delytelse_id: str
    ref_delytelse_id: str | None
    ref_fagsystem_id: str | None
    kode_klassifik: str
    fom: date
    tom: date
    sats: int
    type_sats: str
    saksbeh_id: str
    utbetales_til_id: str
    henvisning: str
    attestant_id: str
    vedtakssats: int | None

    @property
    def is_stop(self) -> bool:
        return self.kode_status_linje == "OPPH"


@record
class Order:
    """One ``oppdrag-110``: every line of one case for one message, all or nothing."""

    kode_endring: str  # NY | ENDR
    fagsystem_id: str
    oppdrag_gjelder_id: str
    saksbeh_id: str
    nokkel_avstemming: str
    tidspkt_melding: datetime
    lines: tuple[Line, ...]
    kode_aksjon: str = "1"
    kode_fagomraade: str = KODE_FAGOMRAADE


@record
class DetailLine:
    """One line of a status's ``detaljer``; a stop line shows ``belop == 0``."""

    behandling_id: str
    fom: date
    tom: date
    vedtakssats: int | None
    belop: int
    klassekode: str

    def to_json(self) -> dict[str, Any]:
        return {
            "behandlingId": self.behandling_id,
            "fom": iso(self.fom),
            "tom": iso(self.tom),
            "vedtakssats": self.vedtakssats,
            "beløp": self.belop,
            "klassekode": self.klassekode,
        }


@record
class Details:  # a status's ``detaljer``: the order's lines sorted by fom
    ytelse: str
    linjer: tuple[DetailLine, ...]

    def to_json(self) -> dict[str, Any]:
        return {"ytelse": self.ytelse, "linjer": [line.to_json() for line in self.linjer]}


class ReceiptCode(StrEnum):
    OK = "00"
    WARNING = "04"
    FUNCTIONAL_ERROR = "08"
    TECHNICAL_ERROR = "12"


@dataclass(frozen=True, kw_only=True)
class Receipt:
    """The payment system's answer (``<mmel>``); ``alvorlighetsgrad`` is stored trimmed."""

    alvorlighetsgrad: str
    kode_melding: str | None
    beskr_melding: str | None
    fagsystem_id: str
    nokkel_avstemming: str

    @property
    def accepted(self) -> bool:
        """``00`` and ``04``: the order's candidate state becomes the confirmed state."""
        return self.alvorlighetsgrad in (ReceiptCode.OK, ReceiptCode.WARNING)
