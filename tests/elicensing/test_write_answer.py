"""A balance write e-licensing accepted (any 2xx) is a success whatever its body says: decoding
the body once turned an applied write into a 502, and a user's retry applied the units twice.
The adjustment is dated by the configured zone's day, not the host's."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx

from tether.elicensing import units
from tether.elicensing.client import ElicensingClient
from tether.elicensing.service import ElicensingService
from tether.elicensing.settings import ElicensingSettings
from tether.elicensing.simulator import ElicensingSimulatorServer

from .conftest import invoice_number


class PlainTextAdjustAnswer(httpx.AsyncBaseTransport):
    """The real simulator behind it; its answer to ``/adjust`` replaced by a 200 ``OK`` text,
    as an e-licensing that answers writes without JSON would send."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        answer = await self.inner.handle_async_request(request)
        if request.method == "POST" and request.url.path.endswith("/adjust"):
            await answer.aread()
            return httpx.Response(200, text="OK")
        return answer

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_an_accepted_write_without_json_is_a_success_applied_once(
    service: ElicensingService,
    el_settings: ElicensingSettings,
    versions: list[int],
    sim: ElicensingSimulatorServer,
) -> None:
    real = service.client
    service.client = ElicensingClient.from_settings(el_settings, transport=PlainTextAdjustAnswer())
    try:
        read = await units.apply_compliance_units(
            service, versions[0], Decimal("10.00"), comment=None
        )
    finally:
        await service.client.aclose()
        service.client = real
    assert read.data_is_fresh
    adjustments = [a for fee in read.invoice.line_items for a in fee.adjustments]
    applied = [a for a in adjustments if a.reason == "Compliance Units Applied"]
    assert [a.amount for a in applied] == [Decimal("-10.00")]  # once
    today = datetime.now(ZoneInfo(el_settings.timezone)).date()
    assert applied[0].adjustment_date == today
    assert invoice_number(sim)
