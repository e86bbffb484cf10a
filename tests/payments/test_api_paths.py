"""Keys and sakIds with reserved characters, and the case page's errors, through the whole app
under uvicorn: the server decodes the path (``%2F`` too) before any route sees it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tether.core.settings import Settings
from tether.payments.console import build_panel

from .conftest import june, message

KEY = "a/b?c d%e#f"  # every character a path or a URL treats specially
SAK = "s/1?x y%z#"


@pytest.fixture
def api(settings: Settings, start_api: Any) -> httpx.Client:
    client: httpx.Client = start_api(settings)
    return client


def test_a_key_and_sak_id_with_reserved_characters_round_trip(api: httpx.Client) -> None:
    posted = api.post(
        "/api/v1/payments/dagpenger",
        content=message(june(3, 14), sak=SAK),
        headers={"Transaction-ID": KEY},
    )
    assert posted.status_code == 202, posted.text
    url = posted.json()["status_url"]
    assert url == "/api/v1/payments/status/a%2Fb%3Fc%20d%25e%23f"
    status = api.get(url)
    assert status.status_code == 200, status.text
    assert status.json()["key"] == KEY and status.json()["status"] == "MOTTATT"

    case = api.get(f"/api/v1/payments/cases/{quote(SAK, safe='')}")
    assert case.status_code == 200, case.text
    assert case.json()["sakId"] == SAK
    orders = api.get("/api/v1/payments/orders", params={"sakId": SAK}).json()
    assert [o["original_key"] for o in orders] == [KEY]
    page = api.get(f"/payments/cases/{quote(SAK, safe='')}")
    assert page.status_code == 200 and "s/1?x y%z#" in page.text


def test_a_key_ending_in_a_slash_is_its_own_key(api: httpx.Client) -> None:
    for key in ("k", "k/"):
        body = message(june(3, 14), sak=f"sak-{len(key)}")
        api.post("/api/v1/payments/dagpenger", content=body, headers={"Transaction-ID": key})
    got = api.get("/api/v1/payments/status/k%2F", follow_redirects=False)
    assert got.status_code == 200 and got.json()["key"] == "k/"


def test_an_unknown_case_page_is_an_html_404_in_the_layout(api: httpx.Client) -> None:
    for accept in ("application/json", "*/*", "text/html"):
        page = api.get("/payments/cases/nope", headers={"Accept": accept})
        assert page.status_code == 404
        assert page.headers["content-type"].startswith("text/html")
        assert "<h1>Not found</h1>" in page.text and "no case DAGPENGER/nope" in page.text
        assert 'href="/"' in page.text  # the shared layout and its way back
    assert api.get("/api/v1/payments/cases/nope").status_code == 404  # one object: 404
    assert api.get("/api/v1/payments/orders", params={"sakId": "nope"}).json() == []  # a list


def test_the_console_links_a_case_by_its_quoted_sak_id() -> None:
    now = datetime.now(UTC)
    waiting = {
        "sak_id": "a/b?c",
        "state": "SENT",
        "original_key": "k",
        "created_at": now.isoformat(),
    }
    row = {"unsent": 0, "at_payment_system": 1, "queued": 0, "oldest_waiting": now}
    row |= {"statuses_unpublished": 0, "oldest_unpublished": None}
    panel = build_panel({**row, "waiting": [waiting]}, now)
    assert panel.table is not None
    assert panel.table.rows[0][0].link == "/payments/cases/a%2Fb%3Fc"  # type: ignore[union-attr]
