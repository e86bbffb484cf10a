"""The order XML's two readers agree: an order in the form ``build_order_xml`` writes (read by
``OrderForm``) reads as the same order, or fails with the same message, as that order out of the
form (read by ElementTree)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.payments.test_domain import FERIE, NOW, days, message
from tests.payments.test_lines import paid, per, sends
from tests.payments.test_oppdrag_xml import two_line_order
from tether.payments import oppdrag
from tether.payments.domain import plan
from tether.payments.models import Order
from tether.payments.oppdrag import OppdragFormatError


def stop_and_new_lines() -> Order:
    """A stop line (status and its date), then a NY line that refers to the chain's last."""
    order = plan(
        sends(per("2024-06-03", "2024-06-07", 100), per("2024-06-10", "2024-06-12", 300)),
        paid(per("2024-06-01", "2024-06-14", 100)),
        now=NOW,
    ).order
    assert order is not None
    return order


def ferietillegg() -> Order:
    msg = message(days("2024-06-03", "2024-06-07", 50, type_=FERIE), sakId="SAK9")
    order = plan(msg, None, now=NOW).order
    assert order is not None
    return order


def unusual() -> Order:
    """Every optional element of a line left out, and texts with what XML needs no escape for."""
    order = two_line_order()
    lines = tuple(replace(x, vedtakssats=None, henvisning="Ø\t\n'\"😀 ") for x in order.lines)
    return replace(order, lines=lines, saksbeh_id="Z 990", kode_endring="ENDR")


ORDERS = [two_line_order(), stop_and_new_lines(), ferietillegg(), unusual()]


def outside_the_form(xml: str) -> str:
    """The same order, in a form ``OrderForm`` does not read (another namespace prefix)."""
    return xml.replace("ns2", "ns3")


def outcome(xml: str | bytes) -> Order | str:
    try:
        return oppdrag.parse_order_xml(xml)
    except OppdragFormatError as exc:
        return str(exc)


@pytest.mark.parametrize("order", ORDERS)
def test_every_order_tether_writes_is_in_the_form(order: Order) -> None:
    xml = oppdrag.build_order_xml(order)
    assert oppdrag._FORM.read(xml) == oppdrag._FORM.read(xml.encode()) == outcome(xml)
    assert outcome(xml) == outcome(outside_the_form(xml)) == outcome(outside_the_form(xml).encode())
    assert oppdrag._FORM.read(outside_the_form(xml)) is None


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("<sats>100</sats>", "<sats>x</sats>"),
        ("<sats>100</sats>", "<sats> 1_00 </sats>"),  # int() reads it: both readers do
        ("<vedtakssats>100</vedtakssats>", "<vedtakssats>1.5</vedtakssats>"),
        ("<vedtakId>2024-06-01</vedtakId>", "<vedtakId>2024-13-01</vedtakId>"),
        ("<datoVedtakFom>2024-06-03</datoVedtakFom>", "<datoVedtakFom>x</datoVedtakFom>"),
        ("<datoVedtakTom>2024-06-07</datoVedtakTom>", "<datoVedtakTom>2024-6-7</datoVedtakTom>"),
        ("<datoStatusFom>2024-06-01</datoStatusFom>", "<datoStatusFom>01.06</datoStatusFom>"),
        ("<tidspktMelding>2024-07-01-12", "<tidspktMelding>2024-07-01T12"),
        ("<kodeAksjon>1</kodeAksjon>", "<kodeAksjon></kodeAksjon>"),  # empty: missing
        ("<kodeStatusLinje>OPPH</kodeStatusLinje>", "<kodeStatusLinje></kodeStatusLinje>"),
        ("<henvisning>B2</henvisning>", "<henvisning>B&amp;2</henvisning>"),
        ("<henvisning>B2</henvisning>", "<henvisning>B\r\n2</henvisning>"),  # read as B\n2
        ("<henvisning>B2</henvisning>", "<henvisning>B\x012</henvisning>"),  # not XML
        ("<henvisning>B2</henvisning>", "<henvisning>B\ud8002</henvisning>"),  # not UTF-8
        ("<henvisning>B2</henvisning>", "<henvisning>B\uffff2</henvisning>"),
        ("<henvisning>B2</henvisning>", "<henvisning>B2>3</henvisning>"),
        ("<typeSats>DAG</typeSats>", ""),
        ("<attestantId>dagpenger</attestantId>", ""),
        ("</ns2:oppdrag>", "</ns2:oppdrag>\n"),
        ("<oppdrag-110>", "<oppdrag-110>\n"),
    ],
)
def test_both_readers_give_the_same_order_or_error(old: str, new: str) -> None:
    xml = oppdrag.build_order_xml(stop_and_new_lines())
    assert old in xml
    changed = xml.replace(old, new)
    assert outcome(changed) == outcome(outside_the_form(changed))


def test_the_first_bad_value_is_the_one_named() -> None:
    xml = oppdrag.build_order_xml(two_line_order())
    bad = xml.replace("<sats>100</sats>", "<sats>x</sats>").replace(
        "<datoVedtakTom>2024-06-14</datoVedtakTom>", "<datoVedtakTom>y</datoVedtakTom>"
    )
    assert (
        outcome(bad)
        == outcome(outside_the_form(bad))
        == "invalid literal for int() with base 10: 'x'"
    )


def test_bytes_not_utf8_are_not_xml() -> None:
    xml = oppdrag.build_order_xml(two_line_order()).encode().replace(b"B1", b"B\xff")
    assert oppdrag._FORM.read(xml) is None
    assert str(outcome(xml)).startswith("not XML")
