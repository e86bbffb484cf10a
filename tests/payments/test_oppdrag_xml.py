"""The Oppdrag XML: golden structure of an order and a receipt, byte-determinism, parsing back,
what the parser refuses, and the simulation JSON."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tests.payments.test_domain import NOW, days, message
from tests.payments.test_lines import L, paid, per, sends
from tether.payments import oppdrag
from tether.payments.domain import plan, receipt_outcome
from tether.payments.models import Order, Receipt
from tether.payments.oppdrag import OppdragFormatError

HEADER = [
    "kodeAksjon",
    "kodeEndring",
    "kodeFagomraade",
    "fagsystemId",
    "utbetFrekvens",
    "oppdragGjelderId",
    "datoOppdragGjelderFom",
    "saksbehId",
    "avstemming-115",
    "oppdrags-enhet-120",
]
LINE = [
    "kodeEndringLinje",
    "vedtakId",
    "delytelseId",
    "kodeKlassifik",
    "datoKlassifikFom",
    "datoVedtakFom",
    "datoVedtakTom",
    "sats",
    "fradragTillegg",
    "typeSats",
    "brukKjoreplan",
    "saksbehId",
    "utbetalesTilId",
    "henvisning",
]
TAIL = ["attestant-180", "vedtakssats-157"]


def two_line_order() -> Order:
    msg = message(days("2024-06-03", "2024-06-07") + days("2024-06-10", "2024-06-14", 200))
    order = plan(msg, None, now=datetime(2024, 6, 1, 9, 8, 7, 654321)).order
    assert order is not None
    return order


def tree(xml: str) -> ET.Element:
    return ET.fromstring(xml.encode())


def texts(el: ET.Element) -> dict[str, str | None]:
    return {child.tag: child.text for child in el}


def test_order_xml_golden_structure() -> None:
    xml = oppdrag.build_order_xml(two_line_order())
    assert xml.startswith('<?xml version="1.0" encoding="UTF-8" standalone="yes"?><ns2:oppdrag ')
    root = tree(xml)
    assert root.tag == f"{{{oppdrag.NAMESPACE}}}oppdrag"
    [head] = list(root)
    assert head.tag == "oppdrag-110"
    tags = [c.tag for c in head]
    assert tags == HEADER + ["oppdrags-linje-150"] * 2
    fields = texts(head)
    assert {k: fields[k] for k in HEADER[:8]} == {
        "kodeAksjon": "1",
        "kodeEndring": "NY",
        "kodeFagomraade": "DP",
        "fagsystemId": "SAK1",
        "utbetFrekvens": "MND",
        "oppdragGjelderId": "12345678901",
        "datoOppdragGjelderFom": "2000-01-01",
        "saksbehId": "dagpenger",
    }
    avstemming = texts(head.find("avstemming-115"))  # type: ignore[arg-type]
    assert avstemming["kodeKomponent"] == "DP"
    assert avstemming["tidspktMelding"] == "2024-06-01-09.08.07.654321"
    assert len(avstemming["nokkelAvstemming"] or "") <= 30
    assert texts(head.find("oppdrags-enhet-120")) == {  # type: ignore[arg-type]
        "typeEnhet": "BOS",
        "enhet": "8020",
        "datoEnhetFom": "1970-01-01",
    }
    first, second = head.findall("oppdrags-linje-150")
    assert [c.tag for c in first] == LINE + TAIL
    assert [c.tag for c in second] == [*LINE, "refFagsystemId", "refDelytelseId", *TAIL]
    line = texts(first)
    assert (
        line["kodeEndringLinje"],
        line["datoVedtakFom"],
        line["datoVedtakTom"],
        line["sats"],
        line["fradragTillegg"],
        line["typeSats"],
        line["brukKjoreplan"],
        line["henvisning"],
        line["vedtakId"],
        line["kodeKlassifik"],
    ) == ("NY", "2024-06-03", "2024-06-07", "100", "T", "DAG", "N", "B1", "2024-06-01", "DAGPENGER")
    assert first.findtext("attestant-180/attestantId") == "dagpenger"
    assert first.findtext("vedtakssats-157/vedtakssats") == "100"
    assert second.findtext("refDelytelseId") == line["delytelseId"]


def test_a_stop_line_carries_status_and_no_reference() -> None:
    order = plan(
        sends(per("2024-06-01", "2024-06-07", 100)),
        paid(per("2024-06-01", "2024-06-14", 100)),
        now=NOW,
    ).order
    assert order is not None
    head = tree(oppdrag.build_order_xml(order))[0]
    assert head.findtext("kodeEndring") == "ENDR"
    [stop] = head.findall("oppdrags-linje-150")
    assert [c.tag for c in stop][:4] == [
        "kodeEndringLinje",
        "kodeStatusLinje",
        "datoStatusFom",
        "vedtakId",
    ]
    assert (
        stop.findtext("kodeStatusLinje"),
        stop.findtext("datoStatusFom"),
        stop.findtext("delytelseId"),
        stop.find("refDelytelseId"),
    ) == ("OPPH", "2024-06-08", L, None)


def test_the_same_order_gives_the_same_bytes() -> None:
    assert oppdrag.build_order_xml(two_line_order()) == oppdrag.build_order_xml(two_line_order())
    later = replace(two_line_order(), tidspkt_melding=datetime(2024, 6, 2))
    assert oppdrag.build_order_xml(later) != oppdrag.build_order_xml(two_line_order())


def test_an_order_reads_back_as_it_was_built() -> None:
    order = two_line_order()
    back = oppdrag.parse_order_xml(oppdrag.build_order_xml(order))
    assert back == replace(order, lines=tuple(replace(x, uid="") for x in order.lines))


def test_special_characters_are_escaped_and_read_back() -> None:
    order = replace(two_line_order(), saksbeh_id="<Ø&\"'>")
    assert oppdrag.parse_order_xml(oppdrag.build_order_xml(order)).saksbeh_id == "<Ø&\"'>"


def test_a_receipt_is_the_order_with_mmel_first() -> None:
    xml = oppdrag.build_order_xml(two_line_order())
    receipt = oppdrag.build_receipt_xml(xml, "08 ", "B110008F", "Oppdraget finnes fra før")
    root = tree(receipt)
    assert [c.tag for c in root] == ["mmel", "oppdrag-110"]
    assert texts(root[0]) == {
        "systemId": "231-OPPD",
        "kodeMelding": "B110008F",
        "alvorlighetsgrad": "08 ",
        "beskrMelding": "Oppdraget finnes fra før",
    }
    assert ET.tostring(root[1]) == ET.tostring(tree(xml)[0])
    parsed = oppdrag.parse_receipt(receipt)
    order = two_line_order()
    assert (
        parsed.alvorlighetsgrad,
        parsed.kode_melding,
        parsed.fagsystem_id,
        parsed.nokkel_avstemming,
        parsed.accepted,
    ) == ("08", "B110008F", "SAK1", order.nokkel_avstemming, False)
    ok = oppdrag.parse_receipt(oppdrag.build_receipt_xml(receipt, "00"))
    assert (ok.alvorlighetsgrad, ok.beskr_melding, ok.accepted) == ("00", None, True)


@pytest.mark.parametrize(
    "raw",
    [
        "not xml at all",
        "<other/>",
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><oppdrag>&a;</oppdrag>',
        "<oppdrag><oppdrag-110><kodeAksjon>1</kodeAksjon></oppdrag-110></oppdrag>",
        "<oppdrag></oppdrag>",
    ],
)
def test_the_parser_refuses_what_is_not_an_order(raw: str) -> None:
    with pytest.raises(OppdragFormatError):
        oppdrag.parse_order_xml(raw)


def test_bad_values_are_format_errors() -> None:
    xml = oppdrag.build_order_xml(two_line_order()).replace("<sats>100</sats>", "<sats>x</sats>")
    with pytest.raises(OppdragFormatError):
        oppdrag.parse_order_xml(xml)


@pytest.mark.parametrize(
    "tidspkt",
    [
        "2024-06-20-10.05.07.000123",
        "2024-6-2-1.5.7.12",  # strptime reads one digit (and up to six for the fraction)
        "2024-02-30-10.00.00.000000",  # no such day
        "2024-13-01-10.00.00.000000",
        "2024-06-20-24.00.00.000000",
        "2024-06-20-10.00.60.000000",  # strptime takes a leap second, datetime does not
        "2024-06-20T10:00:00",
    ],
)
def test_tidspkt_melding_reads_as_strptime_does(tidspkt: str) -> None:
    order = replace(two_line_order(), tidspkt_melding=datetime(2024, 6, 20, 10, 5, 7, 123))
    written = order.tidspkt_melding.strftime(oppdrag.TIDSPKT_FORMAT)
    xml = oppdrag.build_order_xml(order).replace(written, tidspkt)
    try:
        expected = datetime.strptime(tidspkt, oppdrag.TIDSPKT_FORMAT)
    except ValueError as exc:
        with pytest.raises(OppdragFormatError, match=re.escape(str(exc))):
            oppdrag.parse_order_xml(xml)
        return
    assert oppdrag.parse_order_xml(xml).tidspkt_melding == expected


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2024, 6, 20, 10, 5, 7, 123),
        datetime(2024, 12, 31, 23, 59, 59, 999999),
        datetime(2024, 1, 2, 3, 4, 5),  # no fraction: still six digits
        datetime(2024, 6, 20, 10, 5, 7, 1, tzinfo=timezone(timedelta(hours=2))),  # offset left out
        datetime(2024, 6, 20, 10, 5, 7, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999),
        datetime(999, 1, 1),  # a year below 1000: strftime's own answer, padded or not
        datetime(1, 1, 1),
    ],
)
def test_tidspkt_melding_is_written_as_strftime_writes_it(moment: datetime) -> None:
    assert oppdrag.tidspkt(moment) == moment.strftime(oppdrag.TIDSPKT_FORMAT)
    order = replace(two_line_order(), tidspkt_melding=moment)
    written = moment.strftime(oppdrag.TIDSPKT_FORMAT)
    assert f"<tidspktMelding>{written}</tidspktMelding>" in oppdrag.build_order_xml(order)


def test_a_receipt_needs_an_oppdrag_root() -> None:
    with pytest.raises(OppdragFormatError):
        oppdrag.build_receipt_xml("<other/>", "00")
    twice = oppdrag.build_receipt_xml(
        oppdrag.build_receipt_xml(oppdrag.build_order_xml(two_line_order()), "08"), "00"
    )
    assert twice.count("<mmel>") == 1


def test_an_order_is_not_a_receipt() -> None:
    with pytest.raises(OppdragFormatError, match="mmel"):
        oppdrag.parse_receipt(oppdrag.build_order_xml(two_line_order()))


def test_simulation_request_and_response_shapes() -> None:
    order = two_line_order()
    request = oppdrag.simulation_request(order)
    assert oppdrag.parse_simulation_request(request) == oppdrag.parse_order_xml(request["oppdrag"])
    with pytest.raises(OppdragFormatError):
        oppdrag.parse_simulation_request({"oppdrag": 7})
    period = oppdrag.SimulatedPeriod(
        fom=per("2024-06-03", "2024-06-07", 1).fom,
        tom=per("2024-06-03", "2024-06-07", 1).tom,
        klassekode="DAGPENGER",
        tidligere_utbetalt=500,
        nytt_belop=200,
        posteringer=(oppdrag.Posting(type="YTEL", klassekode="DAGPENGER", belop=200),),
    )
    assert oppdrag.simulation_response("SAK1", [period]) == {
        "fagsystemId": "SAK1",
        "totalBeløp": -300,
        "perioder": [
            {
                "fom": "2024-06-03",
                "tom": "2024-06-07",
                "klassekode": "DAGPENGER",
                "tidligereUtbetalt": 500,
                "nyttBeløp": 200,
                "differanse": -300,
                "posteringer": [{"type": "YTEL", "klassekode": "DAGPENGER", "beløp": 200}],
            }
        ],
    }


# --- what a receipt means -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "status_code"),
    [
        ("00", "OK", None),
        ("04", "OK", 200),
        ("08", "FEILET", 400),
        ("08 ", "FEILET", 400),
        ("12", "FEILET", 500),
    ],
)
def test_receipt_codes_map_to_statuses(code: str, status: str, status_code: int | None) -> None:
    receipt = Receipt(
        alvorlighetsgrad=code,
        kode_melding="K",
        beskr_melding="tekst",
        fagsystem_id="S",
        nokkel_avstemming="N",
    )
    got, error = receipt_outcome(receipt)
    assert (got, error and error["statusCode"]) == (status, status_code)
