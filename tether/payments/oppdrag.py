"""The payment system's wire formats: the Oppdrag order XML, its receipt (the same XML with
``<mmel>``), and the simulation request/answer JSON.

Building is byte-deterministic: the same ``Order`` always gives the same XML. Parsing refuses DTDs
(no entity tricks) and reads elements by local name, so namespace prefixes do not matter.
"""

from __future__ import annotations

import contextlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from xml.sax.saxutils import escape

from tether.payments import receipt_head
from tether.payments.models import Line, Order, Receipt, iso
from tether.payments.order_form import OrderForm, Texts

NAMESPACE = "http://www.trygdeetaten.no/skjema/oppdrag"
ORDERS_STREAM = "OPPDRAG_ORDERS"
ORDERS_SUBJECT = "oppdrag.orders.v1"
RECEIPTS_STREAM = "OPPDRAG_RECEIPTS"
RECEIPTS_SUBJECT = "oppdrag.receipts.v1"
TIDSPKT_FORMAT = "%Y-%m-%d-%H.%M.%S.%f"  # yyyy-MM-dd-HH.mm.ss.SSSSSS
SYSTEM_ID = "231-OPPD"
_DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
_ROOT_START = re.compile(r"<(?:[A-Za-z_][\w.-]*:)?oppdrag(?:\s[^>]*)?>")
_MMEL = re.compile(r"<mmel>.*?</mmel>", re.DOTALL)
_TIDSPKT = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})-([0-9]{2})\.([0-9]{2})\.([0-9]{2})\.([0-9]{6})"
)


class OppdragFormatError(ValueError):
    """XML that is not an order or receipt this module can read."""


# --- building ---------------------------------------------------------------------------------


def _el(tag: str, value: object | None) -> str:
    """``<tag>text</tag>`` with the text escaped as ElementTree would; "" when ``value`` is None."""
    if value is None:
        return ""
    text = value.isoformat() if isinstance(value, date) else str(value)
    return f"<{tag}>{_esc(text)}</{tag}>"


def _esc(text: str) -> str:
    """``escape`` (``&``, ``<``, ``>``), with no call for the usual text that has none."""
    return escape(text) if "&" in text or "<" in text or ">" in text else text


def _line_xml(line: Line) -> str:
    """One line: required values written in place (dates ISO, numbers as digits, text escaped),
    the optional ones by ``_el`` (left out when None); ~40 calls fewer per order."""
    fom = iso(line.fom)
    vedtakssats = line.vedtakssats
    return (
        f"<oppdrags-linje-150><kodeEndringLinje>{_esc(line.kode_endring_linje)}</kodeEndringLinje>"
        f"{_el('kodeStatusLinje', line.kode_status_linje)}"
        f"{_el('datoStatusFom', line.dato_status_fom)}"
        f"<vedtakId>{iso(line.vedtak_id)}</vedtakId>"
        f"<delytelseId>{_esc(line.delytelse_id)}</delytelseId>"
        f"<kodeKlassifik>{_esc(line.kode_klassifik)}</kodeKlassifik>"
        f"<datoKlassifikFom>{fom}</datoKlassifikFom><datoVedtakFom>{fom}</datoVedtakFom>"
        f"<datoVedtakTom>{iso(line.tom)}</datoVedtakTom>"
        f"<sats>{line.sats}</sats><fradragTillegg>T</fradragTillegg>"
        f"<typeSats>{_esc(line.type_sats)}</typeSats><brukKjoreplan>N</brukKjoreplan>"
        f"<saksbehId>{_esc(line.saksbeh_id)}</saksbehId>"
        f"<utbetalesTilId>{_esc(line.utbetales_til_id)}</utbetalesTilId>"
        f"<henvisning>{_esc(line.henvisning)}</henvisning>"
        f"{_el('refFagsystemId', line.ref_fagsystem_id)}"
        f"{_el('refDelytelseId', line.ref_delytelse_id)}"
        f"<attestant-180><attestantId>{_esc(line.attestant_id)}</attestantId></attestant-180>"
        + (
            ""
            if vedtakssats is None
            else f"<vedtakssats-157><vedtakssats>{vedtakssats}</vedtakssats></vedtakssats-157>"
        )
        + "</oppdrags-linje-150>"
    )


def tidspkt(moment: datetime) -> str:
    """``moment.strftime(TIDSPKT_FORMAT)`` from its ISO form (``yyyy-MM-dd-HH:mm:ss.ffffff``,
    the offset cut off): ``strftime`` with ``%f`` builds a time tuple and formats twice."""
    if moment.year < 1000:  # strftime's %Y does not pad such a year everywhere: its own answer
        return moment.strftime(TIDSPKT_FORMAT)
    return moment.isoformat("-", "microseconds")[:26].replace(":", ".")


def build_order_xml(order: Order) -> str:
    """The order as the payment system receives it: fixed element order, optional ones left out,
    so the same order is the same bytes. Written as text (escaped like ElementTree) because
    building a tree cost more than everything else about a message."""
    kode_fagomraade = _esc(order.kode_fagomraade)
    return "".join(
        (
            _DECLARATION,
            f'<ns2:oppdrag xmlns:ns2="{NAMESPACE}"><oppdrag-110>'
            f"<kodeAksjon>{_esc(order.kode_aksjon)}</kodeAksjon>"
            f"<kodeEndring>{_esc(order.kode_endring)}</kodeEndring>"
            f"<kodeFagomraade>{kode_fagomraade}</kodeFagomraade>"
            f"<fagsystemId>{_esc(order.fagsystem_id)}</fagsystemId>"
            "<utbetFrekvens>MND</utbetFrekvens>"
            f"<oppdragGjelderId>{_esc(order.oppdrag_gjelder_id)}</oppdragGjelderId>"
            "<datoOppdragGjelderFom>2000-01-01</datoOppdragGjelderFom>"
            f"<saksbehId>{_esc(order.saksbeh_id)}</saksbehId>"
            f"<avstemming-115><kodeKomponent>{kode_fagomraade}</kodeKomponent>"
            f"<nokkelAvstemming>{_esc(order.nokkel_avstemming)}</nokkelAvstemming>"
            f"<tidspktMelding>{tidspkt(order.tidspkt_melding)}</tidspktMelding>"
            "</avstemming-115><oppdrags-enhet-120><typeEnhet>BOS</typeEnhet><enhet>8020</enhet>"
            "<datoEnhetFom>1970-01-01</datoEnhetFom></oppdrags-enhet-120>",
            *(_line_xml(line) for line in order.lines),
            "</oppdrag-110></ns2:oppdrag>",
        )
    )


def build_receipt_xml(
    order_xml: str | bytes,
    alvorlighetsgrad: str,
    kode_melding: str | None = None,
    beskr_melding: str | None = None,
) -> str:
    """The receipt: the order's own XML with ``<mmel>`` first (``alvorlighetsgrad`` as given);
    an ``<mmel>`` already there is replaced."""
    text = order_xml.decode() if isinstance(order_xml, bytes) else order_xml
    root = _ROOT_START.search(text)
    if root is None:
        raise OppdragFormatError("no <oppdrag> root element")
    mmel = "".join(
        (
            "<mmel>",
            _el("systemId", SYSTEM_ID),
            _el("kodeMelding", kode_melding),
            _el("alvorlighetsgrad", alvorlighetsgrad),
            _el("beskrMelding", beskr_melding),
            "</mmel>",
        )
    )
    rest = _MMEL.sub("", text[root.end() :])
    return text[: root.end()] + mmel + rest


# --- parsing ----------------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _parse(raw: str | bytes) -> ET.Element:
    data = raw.encode() if isinstance(raw, str) else raw
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise OppdragFormatError("DTDs are not accepted")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise OppdragFormatError(f"not XML: {exc}") from None
    if _local(root.tag) != "oppdrag":
        raise OppdragFormatError(f"root is <{_local(root.tag)}>, not <oppdrag>")
    return root


def _child(el: ET.Element, tag: str) -> ET.Element | None:
    return next((c for c in el if _local(c.tag) == tag), None)


def _text(el: ET.Element | None, tag: str) -> str | None:
    found = None if el is None else _child(el, tag)
    return None if found is None or found.text is None else found.text


def _need(el: ET.Element | None, tag: str) -> str:
    value = _text(el, tag)
    if value is None:
        raise OppdragFormatError(f"<{tag}> is missing")
    return value


def _texts(el: ET.Element) -> dict[str, str | None]:
    """Each child's text by local name, the first of a name winning (as ``_child`` finds it):
    one pass over the element instead of one search per field."""
    found: dict[str, str | None] = {}
    for c in el:
        found.setdefault(_local(c.tag), c.text)
    return found


def _req(texts: Texts, tag: str) -> str:
    value = texts.get(tag)
    if value is None:
        raise OppdragFormatError(f"<{tag}> is missing")
    return value


def _req_day(texts: Texts, tag: str) -> date:
    return date.fromisoformat(_req(texts, tag))


def _get_day(texts: Texts, tag: str) -> date | None:
    value = texts.get(tag)
    return None if value is None else date.fromisoformat(value)


def _get_int(texts: Texts, tag: str) -> int | None:
    value = texts.get(tag)
    return None if value is None else int(value)


def _tidspkt(text: str) -> datetime:
    """``TIDSPKT_FORMAT`` as ``strptime`` reads it (same result, same error), without its cost
    (several times all the rest of a line) for the form this module writes."""
    m = _TIDSPKT.fullmatch(text)
    if m is not None:
        y, mo, d, h, mi, sec, us = map(int, m.groups())
        with contextlib.suppress(ValueError):  # out of range: strptime says why
            return datetime(y, mo, d, h, mi, sec, us)
    return datetime.strptime(text, TIDSPKT_FORMAT)


def _line(t: Texts) -> Line:
    """A line from its texts by element name, whichever reader found them (the tree's, or
    ``OrderForm``'s): one place converts them, in one order, so both fail alike."""
    return Line(
        uid="",  # not on the wire
        kode_endring_linje=_req(t, "kodeEndringLinje"),
        kode_status_linje=t.get("kodeStatusLinje"),
        dato_status_fom=_get_day(t, "datoStatusFom"),
        vedtak_id=_req_day(t, "vedtakId"),
        delytelse_id=_req(t, "delytelseId"),
        ref_delytelse_id=t.get("refDelytelseId"),
        ref_fagsystem_id=t.get("refFagsystemId"),
        kode_klassifik=_req(t, "kodeKlassifik"),
        fom=_req_day(t, "datoVedtakFom"),
        tom=_req_day(t, "datoVedtakTom"),
        sats=int(_req(t, "sats")),
        type_sats=_req(t, "typeSats"),
        saksbeh_id=_req(t, "saksbehId"),
        utbetales_til_id=_req(t, "utbetalesTilId"),
        henvisning=_req(t, "henvisning"),
        attestant_id=_req(t, "attestantId"),
        vedtakssats=_get_int(t, "vedtakssats"),
    )


def _order_of(head: Texts, lines: Iterable[Texts]) -> Order:
    """An order from the texts of its head (``avstemming-115``'s among them) and of its lines,
    converted head first, then line by line."""
    return Order(
        kode_aksjon=_req(head, "kodeAksjon"),
        kode_endring=_req(head, "kodeEndring"),
        kode_fagomraade=_req(head, "kodeFagomraade"),
        fagsystem_id=_req(head, "fagsystemId"),
        oppdrag_gjelder_id=_req(head, "oppdragGjelderId"),
        saksbeh_id=_req(head, "saksbehId"),
        nokkel_avstemming=_req(head, "nokkelAvstemming"),
        tidspkt_melding=_tidspkt(_req(head, "tidspktMelding")),
        lines=tuple(map(_line, lines)),
    )


def _line_texts(el: ET.Element) -> dict[str, str | None]:
    """A line's texts, the attestant's and the vedtakssats' read from their own elements."""
    texts = _texts(el)
    texts["attestantId"] = _text(_child(el, "attestant-180"), "attestantId")
    texts["vedtakssats"] = _text(_child(el, "vedtakssats-157"), "vedtakssats")
    return texts


def _order(root: ET.Element) -> Order:
    head = _child(root, "oppdrag-110")
    if head is None:
        raise OppdragFormatError("<oppdrag-110> is missing")
    texts = _texts(head)
    avstemming = _child(head, "avstemming-115")
    texts["nokkelAvstemming"] = _text(avstemming, "nokkelAvstemming")
    texts["tidspktMelding"] = _text(avstemming, "tidspktMelding")
    lines = (_line_texts(c) for c in head if _local(c.tag) == "oppdrags-linje-150")
    return _order_of(texts, lines)


_FORM = OrderForm(
    _DECLARATION, f'<ns2:oppdrag xmlns:ns2="{NAMESPACE}">', "</ns2:oppdrag>", _order_of
)


def parse_order_xml(raw: str | bytes) -> Order:
    """Read an order back (the simulator's side); ``OppdragFormatError`` when malformed. One in
    the form ``build_order_xml`` writes is read by ``OrderForm``, any other by ElementTree."""
    try:
        order = _FORM.read(raw)
        return _order(_parse(raw)) if order is None else order
    except ValueError as exc:  # bad dates or numbers
        if isinstance(exc, OppdragFormatError):
            raise
        raise OppdragFormatError(str(exc)) from None


def parse_receipt(raw: str | bytes) -> Receipt:
    """Read a receipt; ``alvorlighetsgrad`` comes back trimmed (the payment system pads it).
    One in the usual form is read without a tree of the order it echoes (``receipt_head``)."""
    data = raw.encode() if isinstance(raw, str) else raw
    usual = receipt_head.read(data)
    if usual is not None:
        return usual
    root = _parse(data)
    mmel = _child(root, "mmel")
    if mmel is None:
        raise OppdragFormatError("<mmel> is missing: not a receipt")
    head = _child(root, "oppdrag-110")
    return Receipt(
        alvorlighetsgrad=_need(mmel, "alvorlighetsgrad").strip(),
        kode_melding=_text(mmel, "kodeMelding"),
        beskr_melding=_text(mmel, "beskrMelding"),
        fagsystem_id=_need(head, "fagsystemId"),
        nokkel_avstemming=_need(
            _child(head, "avstemming-115") if head else None, "nokkelAvstemming"
        ),
    )


# --- simulation JSON --------------------------------------------------------------------------


def simulation_request(order: Order) -> dict[str, Any]:
    """The body of ``POST /simulering``: the order's XML in a JSON envelope."""
    return {"oppdrag": build_order_xml(order)}


def parse_simulation_request(body: Mapping[str, Any]) -> Order:
    raw = body.get("oppdrag")
    if not isinstance(raw, str):
        raise OppdragFormatError("'oppdrag' must be the order XML as a string")
    return parse_order_xml(raw)


@dataclass(frozen=True, kw_only=True)
class Posting:
    """One posting of a simulated period: a ``YTEL`` payment (or its reversal) or ``FEIL``."""

    type: str
    klassekode: str
    belop: int

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "klassekode": self.klassekode, "beløp": self.belop}


@dataclass(frozen=True, kw_only=True)
class SimulatedPeriod:
    """What one chain's affected period paid before, pays after, and the postings between."""

    fom: date
    tom: date
    klassekode: str
    tidligere_utbetalt: int
    nytt_belop: int
    posteringer: tuple[Posting, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "fom": self.fom.isoformat(),
            "tom": self.tom.isoformat(),
            "klassekode": self.klassekode,
            "tidligereUtbetalt": self.tidligere_utbetalt,
            "nyttBeløp": self.nytt_belop,
            "differanse": self.nytt_belop - self.tidligere_utbetalt,
            "posteringer": [p.to_json() for p in self.posteringer],
        }


def simulation_response(fagsystem_id: str, periods: Sequence[SimulatedPeriod]) -> dict[str, Any]:
    """The answer of ``POST /simulering``, periods sorted by (fom, klassekode)."""
    ordered = sorted(periods, key=lambda p: (p.fom, p.klassekode))
    return {
        "fagsystemId": fagsystem_id,
        "perioder": [p.to_json() for p in ordered],
        "totalBeløp": sum(p.nytt_belop - p.tidligere_utbetalt for p in ordered),
    }
