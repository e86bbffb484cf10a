"""The obligation page in a real headless Chromium: the stale-data alert comes and goes."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn
from playwright.async_api import async_playwright

from tether.elicensing.service import ElicensingService
from tether.elicensing.simulator import ElicensingSimulatorServer

from .browser import CHROMIUM_ARGS, ensure_chromium
from .conftest import make_app

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ALERT_START = "Connection to source could not be established since"
ALERT_END = "Refreshing the page may resolve this issue."


@pytest.fixture(scope="session")
def chromium() -> Path:
    return ensure_chromium()  # installs Debian's chromium when missing; never skips


@pytest.fixture
async def site(service: ElicensingService) -> AsyncIterator[str]:
    """The app on a real port, served from the test's own event loop."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(make_app(service), lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag only
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    await task
    sock.close()


@pytest.mark.browser
@pytest.mark.timeout(900)
async def test_obligation_page_shows_one_stale_alert_while_source_is_down(
    chromium: Path, site: str, versions: list[int], sim: ElicensingSimulatorServer, admin_key: str
) -> None:
    url = f"{site}/compliance-report-versions/{versions[0]}/obligation"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            first = await page.goto(url)  # no session yet: the sign-in form, then the page
            assert first is not None and first.status == 401
            await page.fill("input[name=token]", admin_key)
            await page.click("button[type=submit]")
            await page.wait_for_url(url)
            assert await page.locator("h1").inner_text() == "Compliance obligation"
            assert await page.get_by_role("alert").count() == 0
            assert await page.locator("#fees tr").count() == 2  # header + one fee
            amount_due = await page.locator("#amount-due").inner_text()
            assert amount_due.startswith("$")

            sim.set_mode("down")
            await page.goto(url + "?force=true")
            alerts = page.get_by_role("alert")
            assert await alerts.count() == 1
            text = await alerts.inner_text()
            assert text.startswith(ALERT_START) and text.endswith(ALERT_END)
            assert await page.locator("#amount-due").inner_text() == amount_due  # local copy
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(
                path=str(ARTIFACTS / "elicensing-stale-alert.png"), full_page=True
            )

            sim.set_mode("none")
            await page.goto(url + "?force=true")
            assert await page.get_by_role("alert").count() == 0
        finally:
            await browser.close()
