"""A receipt in the usual form is read without a tree (``receipt_head``), and reads as the tree
reads it: the same receipt, or the same refusal, for the usual form and for everything near it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.payments.test_oppdrag_xml import two_line_order
from tether.payments import oppdrag, receipt_head
from tether.payments.models import Receipt

RECEIPT = oppdrag.build_receipt_xml(
    oppdrag.build_order_xml(two_line_order()), "08 ", "B110008F", "Oppdraget finnes fra før"
)


def outcome(raw: str | bytes) -> Receipt | str:
    try:
        return oppdrag.parse_receipt(raw)
    except oppdrag.OppdragFormatError as exc:
        return f"refused: {exc}"


def swap(old: str, new: str) -> Callable[[str], str]:
    def edit(xml: str) -> str:
        assert old in xml
        return xml.replace(old, new, 1)

    return edit


def test_the_usual_receipt_is_read_without_a_tree() -> None:
    read = receipt_head.read(RECEIPT.encode())
    assert read == oppdrag.parse_receipt(RECEIPT)
    assert read is not None and (read.alvorlighetsgrad, read.kode_melding) == ("08", "B110008F")
    ok = oppdrag.build_receipt_xml(RECEIPT, "00")
    assert receipt_head.read(ok.encode()) == Receipt(
        alvorlighetsgrad="00",
        kode_melding=None,
        beskr_melding=None,
        fagsystem_id="SAK1",
        nokkel_avstemming=two_line_order().nokkel_avstemming,
    )


@pytest.mark.parametrize(
    "edit",
    [
        swap("<alvorlighetsgrad>08 </alvorlighetsgrad>", "<alvorlighetsgrad></alvorlighetsgrad>"),
        swap("<alvorlighetsgrad>08 ", "<alvorlighetsgrad>0<!-- -->8"),
        swap("<alvorlighetsgrad>08 ", "<alvorlighetsgrad><![CDATA[08]]>&#32;"),
        swap("</alvorlighetsgrad>", "</alvorlighetsgrad><alvorlighetsgrad>12</alvorlighetsgrad>"),
        swap("<kodeMelding>B110008F</kodeMelding>", "<kodeMelding></kodeMelding>"),
        swap("<mmel>", "<mmel>\n  "),
        swap("<fagsystemId>SAK1</fagsystemId>", "<fagsystemId/><fagsystemId>X</fagsystemId>"),
        swap("</fagsystemId>", "</fagsystemId><fagsystemId>SAK2</fagsystemId>"),
        swap("<fagsystemId>SAK1", "<fagsystemId>SAK1\r\n"),
        swap("<nokkelAvstemming>", "<nokkelAvstemming>&amp;"),
        swap("<kodeKomponent>DP</kodeKomponent>", "<avstemming-115/>"),
        swap("xmlns:ns2=", "xmlns:ns3="),  # an unbound prefix
        swap("xmlns:ns2=", 'xmlns="urn:other" xmlns:ns2='),
        swap('encoding="UTF-8"', 'encoding="ISO-8859-1"'),
        swap("</ns2:oppdrag>", ""),  # cut short: the lines are read too
        swap("<sats>", "<sats>&"),
        swap("<datoEnhetFom>", "<datoEnhetFom><![CDATA[<!ENTITY]]>"),
        swap("</oppdrag-110>", "</oppdrag-110>junk"),
    ],
)
def test_a_receipt_near_the_usual_form_reads_as_the_tree_reads_it(
    edit: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    xml = edit(RECEIPT)
    read = outcome(xml)
    monkeypatch.setattr(receipt_head, "read", lambda data: None)  # the tree only
    assert read == outcome(xml)
