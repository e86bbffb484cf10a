"""What the payments API tells a reader: the intake's body in OpenAPI, and where a status's
``doc`` points (tether's validation rules, or the payment system's receipts)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tether.payments import codec
from tether.payments.oppdrag import build_receipt_xml
from tether.payments.service import PaymentsService

from .conftest import june, message

DOCS = Path(__file__).resolve().parents[2] / "docs" / "payments.md"


async def test_openapi_documents_the_intakes_json_body(http: httpx.AsyncClient) -> None:
    schema = (await http.get("/openapi.json")).json()
    body = schema["paths"]["/api/v1/payments/dagpenger"]["post"]["requestBody"]
    message_schema = body["content"]["application/json"]["schema"]
    assert body["required"] is True
    assert {"sakId", "behandlingId", "ident", "vedtakstidspunktet"} <= set(
        message_schema["required"]
    )
    day = message_schema["properties"]["utbetalinger"]["items"]
    assert day["properties"]["utbetalingstype"]["enum"] == ["Dagpenger", "DagpengerFerietillegg"]
    assert "$ref" not in str(message_schema)  # nothing left pointing at pydantic's $defs


async def _answer(service: PaymentsService, code: str) -> None:
    order = (await service.orders("sak1"))[-1]
    xml = build_receipt_xml(order.xml, code, beskr_melding=f"kode {code}")
    await service.apply_receipt(codec.read_receipt(xml), xml)


async def test_only_validation_errors_point_to_the_validation_doc(
    http: httpx.AsyncClient, service: PaymentsService
) -> None:
    async def send(key: str, body: bytes) -> None:
        r = await http.post(
            "/api/v1/payments/dagpenger", content=body, headers={"Transaction-ID": key}
        )
        assert r.status_code == 202

    async def error(key: str) -> dict[str, object]:
        got: dict[str, object] = (await http.get(f"/api/v1/payments/status/{key}")).json()["error"]
        return got

    await send("invalid", message(june(3, 14), sak="x" * 31))
    assert await error("invalid") == {
        "statusCode": 400,
        "msg": "sakId kan ikke være lengre enn 30 tegn",
        "doc": "docs/payments.md#validation",
    }
    for key, code, status_code in (("k08", "08", 400), ("k12", "12", 500), ("k04", "04", 200)):
        await send(key, message(june(3, 14)))
        await _answer(service, code)
        assert await error(key) == {
            "statusCode": status_code,
            "msg": f"kode {code}",
            "doc": "docs/payments.md#receipts",
        }


def test_each_doc_anchor_names_a_section() -> None:
    headings = re.findall(r"^#+ (.+)$", DOCS.read_text(), re.M)
    anchors = {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}
    assert {"validation", "receipts"} <= anchors
