"""The console and the API docs in a real headless Chromium, with the network beyond this
machine blocked: everything a page needs is served by tether itself."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Page, Route, async_playwright

from tests.elicensing.browser import CHROMIUM_ARGS, ensure_chromium

from .conftest import Site

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="session")
def chromium() -> Path:
    return ensure_chromium()  # installs Debian's chromium when missing; never skips


async def offline(page: Page) -> list[str]:
    """Abort every request that leaves 127.0.0.1; return what was blocked."""
    blocked: list[str] = []

    async def handle(route: Route) -> None:
        if urlsplit(route.request.url).hostname in {"127.0.0.1", "localhost"}:
            await route.continue_()
        else:
            blocked.append(route.request.url)
            await route.abort()

    await page.route("**/*", handle)
    return blocked


def refusals(page: Page) -> list[str]:
    """What the browser refuses under the page's Content-Security-Policy, as it happens."""
    refused: list[str] = []
    page.on(
        "console",
        lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
    )
    return refused


@pytest.mark.browser
@pytest.mark.timeout(900)
async def test_console_shows_every_panel_and_refreshes_itself(chromium: Path, site: Site) -> None:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            blocked = await offline(page)
            refused = refusals(page)
            await page.goto(site.url + "/")  # behind a credential: the sign-in form first
            assert await page.locator("h1").inner_text() == "Sign in"
            await page.locator("input[name=token]").fill(site.key)  # scope read is enough
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url(site.url + "/")
            assert await page.locator("h1").inner_text() == "Operator console"
            panels = page.locator("section.panel")
            titles = await panels.locator("h2").all_inner_texts()
            assert titles == [
                "Service",
                "Accounting points",
                "E-licensing",
                "Payment orders",
                "Accruals",
            ]
            ap = page.get_by_role("region", name="Accounting points")
            assert await ap.get_attribute("data-status") == "bad"
            failing = ap.locator('tr[data-label="failing"] td.value')
            assert await failing.inner_text() == "2"
            el = page.get_by_role("region", name="E-licensing")
            circuit = await el.locator('tr[data-label="circuit"] td.value').inner_text()
            assert circuit.startswith("open")
            assert await page.evaluate("typeof htmx") == "object"  # the vendored script ran
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "console.png"), full_page=True)

            import psycopg

            with psycopg.connect(site.db_url, autocommit=True) as conn:
                conn.execute(
                    "UPDATE ap.accounting_point_sync SET last_error = NULL, "
                    "last_error_reason = NULL, last_synced_at = now(), "
                    "next_sync_at = now() + interval '1 hour'"
                )
            # htmx swaps the panels in by itself, without a reload
            await page.wait_for_function(
                "() => document.querySelector('section.panel tr[data-label=\"failing\"] td.value')"
                ".innerText === '0'",
                timeout=20_000,
            )
            assert await ap.get_attribute("data-status") != "bad"
            await page.screenshot(path=str(ARTIFACTS / "console-refreshed.png"), full_page=True)
            # the database goes away: the refresh answers 503 with a Service panel saying so,
            # which htmx swaps in (by default it left the last panels up, looking current)
            with _database_refused(site.db_url):
                await page.wait_for_function(
                    "() => document.querySelector('section.panel[aria-label=\"Service\"] td.value')"
                    ".innerText.startsWith('unreachable')",
                    timeout=20_000,
                )
                service = page.get_by_role("region", name="Service")
                assert await service.get_attribute("data-status") == "bad"
                assert await panels.count() == 1
                await page.screenshot(path=str(ARTIFACTS / "console-db-down.png"), full_page=True)
            assert blocked == []
            assert refused == []  # the security headers' policy holds the pages as they are
        finally:
            await browser.close()


@contextlib.contextmanager
def _database_refused(url: str) -> Iterator[None]:
    """The app's database refuses connections (and its sessions end) inside the block."""
    import psycopg

    from tether.core import db

    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(db.with_dbname(url, "postgres"), autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name]
        )
        try:
            yield
        finally:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


@pytest.mark.browser
@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    ("path", "ready"),
    [("/docs", ".swagger-ui .opblock"), ("/redoc", "redoc-wrap, .redoc-wrap, [role=navigation]")],
)
async def test_api_docs_render_with_the_network_blocked(
    chromium: Path, site: Site, path: str, ready: str
) -> None:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            blocked = await offline(page)
            refused = refusals(page)
            await page.goto(site.url + path)
            await page.wait_for_selector(ready, timeout=30_000)
            text = await page.locator("body").inner_text()
            assert "/api/v1/accounting-points/{gsrn}" in text
            # nothing the page needs comes from outside; ReDoc's bundle only asks for its
            # "by Redocly" footer logo, which is left out
            assert [u for u in blocked if not u.endswith("/redoc/logo-mini.svg")] == []
            assert [r for r in refused if "/redoc/logo-mini.svg" not in r] == []  # as above
            ARTIFACTS.mkdir(exist_ok=True)
            name = path.strip("/")
            await page.screenshot(path=str(ARTIFACTS / f"api-{name}-offline.png"))
        finally:
            await browser.close()
