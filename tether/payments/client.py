"""Client of the payment system's HTTP services: the simulation service and the order lookup.

Orders themselves travel over the queue (JetStream); HTTP is only for what the real system
offers synchronously: simulating an order, and (here) asking whether an order arrived, which the
sender does before re-sending an order whose send was never recorded.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

import httpx

from tether.core.errors import (
    UpstreamInvalidPayload,
    UpstreamNotFound,
    UpstreamRejected,
    UpstreamUnavailable,
)
from tether.core.http import UpstreamClient
from tether.payments.settings import PaymentsSettings

SYSTEM = "oppdrag"
DRY_RUN_AGAIN = "dry-run again under a new key"
ASKED_AGAIN = "restart `tether worker`: it asks again about every order still waiting"


class SimulationRefused(UpstreamRejected):
    """The simulation service judged the order as the payment system would (``08``/``12``)."""

    def __init__(
        self, message: str | None = None, *, alvorlighetsgrad: str = "12", melding: str = ""
    ) -> None:
        super().__init__(message)
        self.alvorlighetsgrad = alvorlighetsgrad.strip()  # trimmed, as a receipt's code is
        self.melding = melding or self.message


class OppdragClient:
    """Typed calls to the payment system; errors are the core ``Upstream*`` errors."""

    def __init__(self, http: UpstreamClient, url: str = "") -> None:
        self.http = http
        self.url = url  # TETHER_PAYMENTS_OPPDRAG_URL: named when it cannot be reached

    @classmethod
    def from_settings(
        cls, settings: PaymentsSettings, transport: httpx.AsyncBaseTransport | None = None
    ) -> OppdragClient:
        timeout = httpx.Timeout(settings.oppdrag_timeout_s, connect=2.0)
        return cls(
            UpstreamClient(
                system=SYSTEM,
                base_url=settings.oppdrag_url,
                token=settings.oppdrag_token.get_secret_value(),
                timeout=timeout,
                transport=transport,
            ),
            url=settings.oppdrag_url,
        )

    async def __aenter__(self) -> OppdragClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    async def simulate(self, xml: str) -> Mapping[str, Any]:
        """Simulate an order: per period what was paid, the new amount and the postings."""
        try:
            response = await self.http.request(
                "POST", "/simulering", json_body={"oppdrag": xml}, idempotent=True
            )
        except UpstreamRejected as exc:
            if exc.http_status in (401, 403):  # the dry run's FEILET then names the setting
                exc.args = (f"{exc.message}; {self._credential_hint(DRY_RUN_AGAIN)}",)
                raise
            raise _verdict(exc) or exc from exc
        except UpstreamUnavailable as exc:  # the dry run's FEILET then says where and what next
            exc.args = (
                f"{exc.message} at TETHER_PAYMENTS_OPPDRAG_URL={self.url}: start the payment "
                "system's simulation service there (locally: `tether simulate oppdrag`), then "
                "dry-run again under a new key",
            )  # the same error (class, timed_out) with the hint: callers still tell it apart
            raise
        try:
            body = response.json()
        except ValueError as exc:
            raise UpstreamInvalidPayload(f"{SYSTEM} simulation answer is not JSON") from exc
        if not isinstance(body, dict):
            raise UpstreamInvalidPayload(f"{SYSTEM} simulation answer is not an object")
        return body

    def _credential_hint(self, then: str) -> str:
        """What to do when the service refuses our credential: a bare "HTTP 401" named neither
        the setting nor, for a CLI run beside the demo, the demo's settings file (which holds
        the demo simulator's random token)."""
        return (
            "TETHER_PAYMENTS_OPPDRAG_TOKEN carries the credential of the payment system's "
            f"simulation service at TETHER_PAYMENTS_OPPDRAG_URL={self.url}: set it to the "
            "service's token (beside `tether demo`, source the demo's CLI settings first: "
            "`set -a; . <TETHER_DATA_DIR>/demo.env; set +a`, the line the demo prints, "
            f"TETHER_DATA_DIR being .tether unless set), then {then}"
        )

    async def has_order(self, order_id: uuid.UUID) -> bool:
        """Whether the payment system already received this order (so it must not be re-sent)."""
        return await self.lookup_order(order_id) is not None

    async def lookup_order(self, order_id: uuid.UUID) -> Mapping[str, Any] | None:
        """What the payment system knows of an order (its verdict), or None if it never got it."""
        try:
            body = await self.http.get_json(f"/orders/{order_id}")
        except UpstreamNotFound:
            return None
        except UpstreamRejected as exc:
            if exc.http_status in (401, 403):  # the worker's warning then names the setting
                exc.args = (f"{exc.message}; {self._credential_hint(ASKED_AGAIN)}",)
            raise
        if not isinstance(body, dict):
            raise UpstreamInvalidPayload(f"{SYSTEM} order lookup answer is not an object")
        return body


def _verdict(exc: UpstreamRejected) -> SimulationRefused | None:
    """A refusal that carries the payment system's verdict (``alvorlighetsgrad``, ``kodeMelding``,
    ``beskrMelding``, as a receipt's ``mmel``), or None for any other refusal."""
    try:
        body = json.loads(exc.answer)
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("alvorlighetsgrad"), str):
        return None
    melding = body.get("beskrMelding") or body.get("kodeMelding") or exc.message
    return SimulationRefused(
        exc.message, alvorlighetsgrad=body["alvorlighetsgrad"], melding=str(melding)
    )
