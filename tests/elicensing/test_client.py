"""Parsing e-licensing answers: tolerant of additions, strict about the contract, Decimal money."""

from __future__ import annotations

import copy
import json
import logging
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tether.elicensing.client import decode, parse_invoice
from tether.elicensing.errors import InvalidElicensingPayload

EXAMPLE: dict[str, Any] = {
    "clientObjectId": "123",
    "clientGUID": "00000000-0000-0000-0000-000000000000",
    "invoiceNumber": "INV-999",
    "invoicePaymentDueDate": "2025-12-31",
    "invoiceOutstandingBalance": "1000968.64",
    "invoiceFeeBalance": "1000968.64",
    "invoiceInterestBalance": "0.00",
    "fees": [
        {
            "feeObjectId": 999,
            "feeGUID": "11111111-1111-1111-1111-111111111111",
            "businessAreaCode": "OBPS",
            "feeDate": "2025-12-18",
            "description": "2024 GGIRCA Compliance Obligation",
            "baseAmount": "1000968.64",
            "taxTotal": "0.00",
            "adjustmentTotal": "0.00",
            "taxAdjustmentTotal": "0.00",
            "paymentBaseAmount": "0.00",
            "paymentTotal": "0.00",
            "invoiceNumber": "INV-999",
            "payments": [
                {
                    "paymentObjectId": 2,
                    "receiptNumber": "R192883",
                    "receivedDate": "2025-11-30",
                    "depositDate": "2025-11-30",
                    "amount": "50.00",
                    "method": "EFT/Wire - OBPS",
                    "cashHandlingArea": "1",
                    "referenceNumber": "1",
                    "distributions": [],
                }
            ],
            "adjustments": [
                {
                    "adjustmentObjectId": 3,
                    "adjustmentTotal": "-10.11",
                    "amount": "-10.11",
                    "date": "2025-11-30",
                    "reason": "Compliance Units Applied",
                    "type": "Adjustment",
                }
            ],
        }
    ],
}


def test_parses_the_spec_example_with_ids_as_strings_and_decimal_money() -> None:
    invoice = parse_invoice(EXAMPLE, invoice_number="INV-999")
    fee = invoice.fees[0]
    assert fee.fee_object_id == "999" and fee.payments[0].payment_object_id == "2"
    assert fee.base_amount == Decimal("1000968.64")
    assert fee.adjustments[0].amount == Decimal("-10.11")


def test_json_numbers_become_exact_decimals() -> None:
    body = b'{"a": 1000968.64, "b": 0.1}'
    decoded = decode(httpx.Response(200, content=body))
    assert decoded == {"a": Decimal("1000968.64"), "b": Decimal("0.1")}


def test_added_fields_are_ignored_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    payload = copy.deepcopy(EXAMPLE)
    payload["brandNewField"] = 1
    payload["fees"][0]["payments"][0]["brandNewChildField"] = "x"
    with caplog.at_level(logging.WARNING, logger="tether.elicensing.client"):
        parse_invoice(payload, invoice_number="INV-999")
        parse_invoice(payload, invoice_number="INV-999")
    warned = [r.getMessage() for r in caplog.records if "unknown field" in r.getMessage()]
    assert len(warned) == 2
    assert any("fees[].payments[].brandNewChildField" in w for w in warned)


@pytest.mark.parametrize(
    ("part", "name"),
    [
        ((), "onlyTopField"),
        (("fees", 0), "onlyFeeField"),
        (("fees", 0, "payments", 0), "onlyPaymentField"),
        (("fees", 0, "adjustments", 0), "onlyAdjustmentField"),
    ],
)
def test_an_added_field_alone_at_any_level_is_noticed(
    part: tuple[Any, ...], name: str, caplog: pytest.LogCaptureFixture
) -> None:
    payload = copy.deepcopy(EXAMPLE)
    node: Any = payload
    for key in part:
        node = node[key]
    node[name] = "x"
    with caplog.at_level(logging.WARNING):
        parse_invoice(payload, invoice_number="INV-999")
    assert any(name in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("invoiceOutstandingBalance",), None),
        (("fees", 0, "baseAmount"), "lots"),
        (("fees", 0, "baseAmount"), True),
        (("fees", 0, "payments", 0, "amount"), 1.5j),
        (("fees", 0, "feeDate"), 20251218),
        (("fees", 0, "feeObjectId"), ""),
        (("fees", 0, "description"), 42),
    ],
)
def test_missing_or_wrongly_typed_fields_are_invalid(path: tuple[Any, ...], value: Any) -> None:
    payload = copy.deepcopy(EXAMPLE)
    target: Any = payload
    for key in path[:-1]:
        target = target[key]
    if value is None:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    with pytest.raises(InvalidElicensingPayload):
        parse_invoice(payload, invoice_number="INV-999")


def test_duplicate_object_ids_and_wrong_invoice_are_invalid() -> None:
    payload = copy.deepcopy(EXAMPLE)
    payload["fees"].append(copy.deepcopy(payload["fees"][0]))
    with pytest.raises(InvalidElicensingPayload, match="twice"):
        parse_invoice(payload, invoice_number="INV-999")
    with pytest.raises(InvalidElicensingPayload, match="asked"):
        parse_invoice(EXAMPLE, invoice_number="INV-1")


def test_an_id_sent_as_an_integral_number_is_that_id() -> None:
    """``2.0`` decodes to a Decimal (never a float); it named fee 2, yet failed every refresh."""
    payload = decode(json.dumps({**EXAMPLE, "clientObjectId": 123.0}).encode())
    assert parse_invoice(payload, invoice_number="INV-999").client_object_id == "123"
    with pytest.raises(InvalidElicensingPayload, match="clientObjectId"):
        parse_invoice(
            decode(json.dumps({**EXAMPLE, "clientObjectId": 1.5}).encode()),
            invoice_number="INV-999",
        )


def test_an_answer_about_another_client_is_invalid() -> None:
    """It would be stored under the linked operator's client, and read as fresh."""
    with pytest.raises(InvalidElicensingPayload, match="about client 456, got 123"):
        parse_invoice(EXAMPLE, invoice_number="INV-999", client_object_id="456")
    assert parse_invoice(EXAMPLE, invoice_number="INV-999", client_object_id="123").fees


@pytest.mark.parametrize(
    "value",
    ["2025-12-31 garbage!!", "2025-12-31T07:30:00Z", "2025-12-31T00:00:00-08:00", "31/12/2025"],
)
def test_a_date_with_trailing_text_or_an_offset_is_invalid(value: str) -> None:
    """Cutting to 10 characters took the garbage, and an offset's day may differ locally."""
    payload = copy.deepcopy(EXAMPLE)
    payload["invoicePaymentDueDate"] = value
    with pytest.raises(InvalidElicensingPayload, match="invoicePaymentDueDate"):
        parse_invoice(payload, invoice_number="INV-999")
    payload["invoicePaymentDueDate"] = "2025-12-31T00:00:00"  # a local date-time: its date
    assert str(parse_invoice(payload, invoice_number="INV-999").due_date) == "2025-12-31"


@pytest.mark.parametrize(
    ("path", "value", "where"),
    [
        (("fees", 0, "feeGUID"), "not-a-guid", "feeGUID"),
        (("clientGUID",), "1234", "clientGUID"),
        (("fees", 0, "baseAmount"), "1000000000000.00", "baseAmount"),
        (("fees", 0, "payments", 0, "amount"), "-1000000000000", "amount"),
        (("fees", 0, "taxTotal"), "0.001", "taxTotal"),
        (("fees", 0, "description"), "x" * 2001, "description"),
        (("fees", 0, "payments", 0, "method"), "EFT\x00", "method"),
        (("fees", 0, "feeObjectId"), "9" * 101, "feeObjectId"),
        (("fees", 0, "adjustments", 0, "reason"), "r" * 256, "reason"),
    ],
)
def test_values_our_columns_cannot_hold_are_invalid_before_the_database(
    path: tuple[Any, ...], value: Any, where: str
) -> None:
    """UUID columns, numeric(14, 2) money and text limits are checked while parsing."""
    payload = copy.deepcopy(EXAMPLE)
    target: Any = payload
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(InvalidElicensingPayload, match=where):
        parse_invoice(payload, invoice_number="INV-999")


def test_largest_money_and_guid_case_are_accepted() -> None:
    payload = copy.deepcopy(EXAMPLE)
    payload["fees"][0]["baseAmount"] = "999999999999.99"
    payload["fees"][0]["feeGUID"] = "AAAAAAAA-1111-1111-1111-111111111111"
    fee = parse_invoice(payload, invoice_number="INV-999").fees[0]
    assert fee.base_amount == Decimal("999999999999.99")
    assert fee.fee_guid == "aaaaaaaa-1111-1111-1111-111111111111"
