"""The payments HTTP routes on a FastAPI app holding a real service and database."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from tether.core import keys
from tether.core.hotpath import HotRoutes
from tether.core.settings import Settings
from tether.payments import codec
from tether.payments.oppdrag import build_receipt_xml
from tether.payments.service import PaymentsService

from .conftest import june, message


def test_intake_is_a_hot_route_and_documents_its_header(app: FastAPI) -> None:
    hot = next(m for m in app.user_middleware if m.cls is HotRoutes)
    assert ("POST", "/api/v1/payments/dagpenger") in hot.kwargs["table"]
    post = app.openapi()["paths"]["/api/v1/payments/dagpenger"]["post"]
    assert {"name": "Transaction-ID", "in": "header", "required": True}.items() <= next(
        p for p in post["parameters"] if p["name"] == "Transaction-ID"
    ).items()


async def test_intake_needs_a_write_credential(app: FastAPI, db_url: str) -> None:
    _, reader = keys.create(db_url, "reader", ["read"])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as anonymous:
        post = await anonymous.post(
            "/api/v1/payments/dagpenger", headers={"Transaction-ID": "k-1"}, content=b"{}"
        )
        assert post.status_code == 401
        read_only = {"Authorization": f"Bearer {reader}", "Transaction-ID": "k-1"}
        post = await anonymous.post("/api/v1/payments/dagpenger", headers=read_only, content=b"{}")
        assert post.status_code == 403
        status = await anonymous.get(
            "/api/v1/payments/status/k-1", headers={"Authorization": f"Bearer {reader}"}
        )
        assert status.status_code == 404  # admitted, and nothing was stored under the key


async def test_post_answers_202_with_the_status_url(http: httpx.AsyncClient) -> None:
    r = await http.post(
        "/api/v1/payments/dagpenger", content=message(june(3, 14)), headers={"Transaction-ID": "k1"}
    )
    assert r.status_code == 202
    assert r.json() == {"key": "k1", "status_url": "/api/v1/payments/status/k1", "duplicate": False}
    s = await http.get("/api/v1/payments/status/k1")
    assert s.json()["status"] == "MOTTATT"
    assert s.json()["detaljer"]["linjer"][0]["klassekode"] == "DAGPENGER"


@pytest.mark.parametrize(
    ("key", "body"),
    [
        ("bad", b"[1, 2"),
        # JSON, not the documented shape: the OpenAPI body is only documented, never parsed
        ("wrong-shape", b'{"sakId": 1}'),
    ],
)
async def test_bad_json_is_accepted_and_feilet_400(
    http: httpx.AsyncClient, key: str, body: bytes
) -> None:
    r = await http.post("/api/v1/payments/dagpenger", content=body, headers={"Transaction-ID": key})
    assert r.status_code == 202
    s = (await http.get(f"/api/v1/payments/status/{key}")).json()
    assert s["status"] == "FEILET" and s["error"]["statusCode"] == 400


@pytest.mark.parametrize("wait", ["nan", "inf", "-1", "61"])
async def test_a_wait_that_is_no_number_of_seconds_in_range_is_422(
    http: httpx.AsyncClient, wait: str
) -> None:
    r = await http.get("/api/v1/payments/status/any", params={"wait": wait})
    assert r.status_code == 422
    assert ("finite number" in r.text) == (wait in ("nan", "inf"))  # not "less than 60"


async def test_missing_transaction_id_is_422(http: httpx.AsyncClient) -> None:
    r = await http.post("/api/v1/payments/dagpenger", content=message(june(3, 14)))
    assert r.status_code == 422


async def test_a_utf8_transaction_id_is_the_key_the_cli_and_broker_would_store(
    http: httpx.AsyncClient, service: PaymentsService
) -> None:
    """ASGI hands header values over as Latin-1, so "qa-ø" became its UTF-8 bytes read as
    Latin-1: a key no status URL found, and another key than the same text sent by the CLI or
    over NATS (UTF-8)."""
    key = "qa-ø-æ"
    r = await http.post(
        "/api/v1/payments/dagpenger",
        content=message(june(3, 14)),
        headers={"Transaction-ID": key.encode()},
    )
    assert r.status_code == 202 and r.json()["key"] == key
    assert (await http.get(r.json()["status_url"])).json()["status"] == "MOTTATT"
    assert (await service.latest_status(key)).status == "MOTTATT"


async def test_a_transaction_id_that_is_not_utf8_is_422(http: httpx.AsyncClient) -> None:
    r = await http.post(
        "/api/v1/payments/dagpenger",
        content=message(june(3, 14)),
        headers={"Transaction-ID": b"qa-\xff"},
    )
    assert r.status_code == 422 and "not UTF-8" in r.text


async def test_two_transaction_ids_are_422_and_nothing_is_taken(http: httpx.AsyncClient) -> None:
    """The first used to be the key, silently; a proxy in front may have read the last."""
    r = await http.post(
        "/api/v1/payments/dagpenger",
        content=message(june(3, 14)),
        headers=[("Transaction-ID", "one"), ("Transaction-ID", "two")],
    )
    assert r.status_code == 422 and "sent 2 times" in r.text
    for key in ("one", "two"):
        assert (await http.get(f"/api/v1/payments/status/{key}")).status_code == 404


async def test_body_over_the_limit_is_413_and_not_logged(http: httpx.AsyncClient) -> None:
    big = b" " * (Settings().max_body_bytes + 1)
    r = await http.post("/api/v1/payments/dagpenger", content=big, headers={"Transaction-ID": "x"})
    assert r.status_code == 413
    assert (await http.get("/api/v1/payments/status/x")).status_code == 404


async def test_reused_key_with_other_content_is_409(http: httpx.AsyncClient) -> None:
    headers = {"Transaction-ID": "k1"}
    await http.post("/api/v1/payments/dagpenger", content=message(june(3, 14)), headers=headers)
    r = await http.post("/api/v1/payments/dagpenger", content=message(june(3, 13)), headers=headers)
    assert r.status_code == 409


async def test_unknown_key_and_case_are_404(http: httpx.AsyncClient) -> None:
    assert (await http.get("/api/v1/payments/status/nope")).status_code == 404
    assert (await http.get("/api/v1/payments/cases/nope")).status_code == 404
    for kind in ("status", "cases"):  # the answer quotes an excerpt, not 15 KB of the path
        long = await http.get(f"/api/v1/payments/{kind}/{'A' * 15_000}")
        assert long.status_code == 404 and len(long.content) < 400, len(long.content)


async def test_wait_returns_when_final_or_at_timeout(
    http: httpx.AsyncClient, service: PaymentsService
) -> None:
    headers = {"Transaction-ID": "k1"}
    await http.post("/api/v1/payments/dagpenger", content=message(june(3, 14)), headers=headers)
    s = await http.get("/api/v1/payments/status/k1", params={"wait": 0.2})
    assert s.json()["status"] == "MOTTATT"  # no receipt: the wait ran out
    order = (await service.orders("sak1"))[0]
    xml = build_receipt_xml(order.xml, "00")
    await service.apply_receipt(codec.read_receipt(xml), xml)
    s = await http.get("/api/v1/payments/status/k1", params={"wait": 5})
    assert s.json()["status"] == "OK"


async def test_case_orders_and_page(http: httpx.AsyncClient, service: PaymentsService) -> None:
    headers = {"Transaction-ID": "k1"}
    await http.post("/api/v1/payments/dagpenger", content=message(june(3, 14)), headers=headers)
    order = (await service.orders("sak1"))[0]
    xml = build_receipt_xml(order.xml, "00")
    await service.apply_receipt(codec.read_receipt(xml), xml)
    case = (await http.get("/api/v1/payments/cases/sak1")).json()
    assert case["never_paid"] is False
    assert case["utbetalinger"][0]["periods"] == [
        {"fom": "2024-06-03", "tom": "2024-06-14", "beløp": 100, "vedtakssats": 100}
    ]
    assert case["utbetalinger"][0]["active"] is True
    orders = (await http.get("/api/v1/payments/orders", params={"sakId": "sak1"})).json()
    assert [(o["state"], o["original_key"]) for o in orders] == [("OK", "k1")]
    assert orders[0]["xml"] == order.xml
    page = await http.get("/payments/cases/sak1")
    assert page.status_code == 200 and "k1" in page.text and "2024-06-03" in page.text
