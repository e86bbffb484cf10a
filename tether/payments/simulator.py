"""A simulator of the state payment system (Oppdrag): a real server over NATS JetStream and HTTP.

For P2 / the capability record: ``simulate`` below is the Typer command for ``tether simulate
oppdrag``; ``start_simulator(nats_url)`` starts one on a background thread (tests, demo) and
returns the server (``.url``, ``.control_url``, ``.ledger``, ``.stop()``).

- Queue: order XML from the JetStream subject ``oppdrag.orders.v1`` (header ``Nats-Msg-Id``),
  one receipt XML per order on ``oppdrag.receipts.v1`` (header ``Nats-Msg-Id`` unique per
  receipt, ``Oppdrag-Msg-Id`` = the order's message id). Redelivered or re-sent orders (same
  message id or nokkelAvstemming) are not applied twice; their first receipt is sent again.
- Data port (bearer token): ``POST /simulering`` ``{"oppdrag": "<order xml>"}`` -> the simulation;
  ``GET /orders/{id}`` (nokkelAvstemming or message id) -> 200 with its receipt code, or 404.
- Control port: ``PUT /faults {"mode": ...}`` (none, 04, 08, 12, 08-untrimmed, slow, silent,
  duplicate, down), ``GET /stats``, ``GET /cases/{sakId}``, ``GET /orders``.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import itertools
import logging
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from fastapi import FastAPI, Request
from rich.console import Console
from starlette.responses import JSONResponse

from tether.core.events import STREAM_MAX_AGE_S, close_quietly, connect_nats, ensure_stream
from tether.core.jetstream import Item, Publisher, Puller
from tether.core.loop import cancel_and_wait
from tether.core.simulator import (
    GenericFaults,
    SimulatorServer,
    SimulatorState,
    control_router,
)
from tether.core.simulator_auth import ControlTokenOption, configured_token
from tether.payments import oppdrag
from tether.payments.oppdrag import OppdragFormatError
from tether.payments.simulated_oppdrag import Ledger, OppdragFault

logger = logging.getLogger(__name__)
DEFAULT_TOKEN = "dev-oppdrag-token"
ORDER_BATCH = 100  # orders fetched, judged and answered together
RECEIPT_ACK_TIMEOUT_S = 5.0  # JetStream's acknowledgement of a receipt (nats-py's own default)


@dataclass(frozen=True, kw_only=True)
class Topology:
    """Where orders arrive and receipts go (tests give each simulator its own)."""

    orders_stream: str = oppdrag.ORDERS_STREAM
    orders_subject: str = oppdrag.ORDERS_SUBJECT
    receipts_stream: str = oppdrag.RECEIPTS_STREAM
    receipts_subject: str = oppdrag.RECEIPTS_SUBJECT
    durable: str = "oppdrag-simulator"
    max_age_s: float = STREAM_MAX_AGE_S  # how long the two queues keep a message (0: for ever)


def create_data_app(ledger: Ledger, state: SimulatorState, token: str) -> FastAPI:
    """The payment system's HTTP side: simulations and "do you have this order"."""
    app = FastAPI(title="Oppdrag simulator")
    expected = f"Bearer {token}"

    def authorized(request: Request) -> bool:
        return hmac.compare_digest(request.headers.get("authorization", ""), expected)

    @app.post("/simulering")
    async def simulering(request: Request) -> Any:
        if not authorized(request):
            return JSONResponse({"detail": "missing or wrong bearer token"}, 401)
        state.calls["simulations"] += 1
        try:
            body = await request.json()
            order = oppdrag.parse_simulation_request(body if isinstance(body, dict) else {})
        except (ValueError, OppdragFormatError) as exc:
            return JSONResponse({"detail": f"not a simulation request: {exc}"}, 400)
        verdict, periods = ledger.simulate(order)
        if not verdict.accepted:
            refusal = {
                "alvorlighetsgrad": verdict.alvorlighetsgrad,
                "kodeMelding": verdict.kode_melding,
                "beskrMelding": verdict.beskr_melding,
            }
            return JSONResponse(refusal, 400)
        return oppdrag.simulation_response(order.fagsystem_id, periods)

    @app.get("/orders/{key}")
    async def get_order(key: str, request: Request) -> Any:
        if not authorized(request):
            return JSONResponse({"detail": "missing or wrong bearer token"}, 401)
        state.calls["order_lookups"] += 1
        found = ledger.find(key)
        return found.to_json() if found else JSONResponse({"detail": "no such order"}, 404)

    return app


def create_control_app(ledger: Ledger, state: SimulatorState) -> FastAPI:
    app = FastAPI(title="Oppdrag simulator control")
    app.include_router(control_router(state, OppdragFault))

    @app.get("/cases/{sak_id}")
    async def get_case(sak_id: str) -> Any:
        found = ledger.view(sak_id)
        return found if found is not None else JSONResponse({"detail": "unknown case"}, 404)

    @app.get("/orders")
    async def list_orders() -> dict[str, Any]:
        return {"orders": [r.to_json() for r in ledger.orders.values()]}

    return app


FREEZE_EVERY = 2000  # orders judged between two freezes of the ledger (own process only)


class OppdragSimulator(SimulatorServer):
    """The HTTP ports of ``SimulatorServer`` plus a JetStream consumer of orders."""

    def __init__(
        self,
        ledger: Ledger,
        state: SimulatorState,
        *,
        nats_url: str,
        topology: Topology,
        token: str,
        **ports: Any,
    ) -> None:
        data = GenericFaults(create_data_app(ledger, state, token), state)
        super().__init__(data, create_control_app(ledger, state), state, data_token=token, **ports)
        self.ledger = ledger
        self.nats_url = nats_url
        self.topology = topology
        self._receipt_seq = itertools.count(1)
        self._instance = uuid.uuid4().hex[:8]  # receipt ids stay unique across restarts
        self._unfrozen = 0  # orders judged since the ledger was last frozen

    async def serve(self) -> None:
        top = self.topology
        nc = await connect_nats(self.nats_url)
        js = nc.jetstream()
        await ensure_stream(js, top.orders_stream, top.orders_subject, max_age_s=top.max_age_s)
        await ensure_stream(js, top.receipts_stream, top.receipts_subject, max_age_s=top.max_age_s)
        sub = await js.pull_subscribe(  # the durable consumer
            top.orders_subject, durable=top.durable, stream=top.orders_stream
        )
        puller = Puller(nc, top.orders_stream, top.durable)
        consumer = asyncio.create_task(self._consume(puller, Publisher(nc, top.receipts_subject)))
        try:
            await super().serve()
        finally:
            await cancel_and_wait(consumer)
            await close_quietly(nc, sub)  # closed even when the broker went first

    async def _consume(self, puller: Puller, receipts: Publisher) -> None:
        while not self._stopped.is_set():
            if self.state.mode == OppdragFault.DOWN:
                await asyncio.sleep(0.05)
                continue
            try:
                msgs = await puller.fetch(ORDER_BATCH, wait_s=0.5)
            except TimeoutError:  # none within the wait
                continue
            except Exception as exc:  # a broken connection: nats reconnects, so try again
                logger.warning("oppdrag simulator could not fetch orders: %r", exc)
                await asyncio.sleep(0.2)
                continue
            await self._handle_batch(receipts, msgs)

    async def _handle_batch(self, receipts: Publisher, msgs: list[Any]) -> None:
        """Each order judged in turn, then the receipts of them all published in one round, in
        order; an order is acked once every receipt of it was acknowledged, else nakked: one
        write and one wait for a fetched batch instead of a publish round trip per order. When
        slow, each order is settled before the next one's wait, so no ack waits for the others'
        sleeps."""
        handled: list[tuple[Any, list[Item]]] = []
        for msg in msgs:
            mode = self.state.mode
            if mode == OppdragFault.DOWN:  # went down while fetching
                await msg.nak(delay=0.2)
                continue
            if mode == OppdragFault.SLOW and handled:
                await self._settle(receipts, handled)
                handled = []
            try:
                handled.append((msg, await self._handle(msg)))
            except Exception:  # a bug must not stop the consumer: log, keep the order
                logger.exception("oppdrag simulator failed on an order")
                await msg.nak(delay=1)
        await self._settle(receipts, handled)
        self._unfrozen += len(msgs)
        if self._alone and self._unfrozen >= FREEZE_EVERY:
            # The ledger only grows (every case and order received): out of the collector's
            # generations, a full collection walks what came since, not every order ever taken
            # (pauses of 70-280 ms at 20,000 cases stalled every receipt). Only in a process of
            # its own: frozen cyclic garbage is never freed, which a test process must not get.
            gc.freeze()
            self._unfrozen = 0

    async def _settle(self, receipts: Publisher, handled: list[tuple[Any, list[Item]]]) -> None:
        """Publish the orders' receipts; ack each order whose receipts all were acknowledged."""
        answers = iter(
            await receipts.publish(
                [item for _, items in handled for item in items], timeout_s=RECEIPT_ACK_TIMEOUT_S
            )
        )
        for msg, items in handled:
            failed = [why for why in itertools.islice(answers, len(items)) if why is not None]
            self.state.calls["receipts"] += len(items) - len(failed)
            if not failed:
                await msg.ack()
                continue
            logger.error("oppdrag simulator could not publish a receipt: %s", failed[0])
            await msg.nak(delay=1)

    async def _handle(self, msg: Any) -> list[Item]:
        """Judge one order; its receipts, to publish (none when silent)."""
        state, mode = self.state, self.state.mode
        msg_id = (msg.headers or {}).get("Nats-Msg-Id")
        outcome = self.ledger.receive(msg.data, msg_id, mode)
        if outcome is None:
            state.calls["unreadable"] += 1
            return []
        received, new = outcome
        state.calls["orders" if new else "duplicates"] += 1
        if new:
            state.calls["applied" if received.applied else "refused"] += 1
        if mode == OppdragFault.SLOW:
            await asyncio.sleep(state.slow_s)
        if mode == OppdragFault.SILENT:
            return []
        receipt = received.receipt(msg.data).encode()
        items: list[Item] = []
        for _ in range(2 if mode == OppdragFault.DUPLICATE else 1):
            receipt_id = f"{received.nokkel_avstemming}.{self._instance}.{next(self._receipt_seq)}"
            headers = {
                "Nats-Msg-Id": receipt_id,
                "Oppdrag-Msg-Id": msg_id or "",
            }
            items.append((receipt, headers))
        return items


def build_simulator(
    *,
    nats_url: str,
    port: int = 0,
    control_port: int = 0,
    token: str = DEFAULT_TOKEN,
    topology: Topology | None = None,
    host: str = "127.0.0.1",
    control_token: str | None = None,
) -> OppdragSimulator:
    """Everything wired and bound to its ports, not yet serving."""
    state = SimulatorState()
    return OppdragSimulator(
        Ledger(),
        state,
        nats_url=nats_url,
        topology=topology or Topology(),
        token=token,
        host=host,
        port=port,
        control_port=control_port,
        control_token=control_token,
    )


def start_simulator(
    nats_url: str, port: int = 0, control_port: int = 0, **options: Any
) -> OppdragSimulator:
    """``build_simulator``, then serve on a background thread; ``stop()`` ends it."""
    server = build_simulator(nats_url=nats_url, port=port, control_port=control_port, **options)
    return server.start_in_thread()


def _not_negative(value: float) -> float:
    if value < 0:
        raise typer.BadParameter(f"{value:g} is negative: give 0 (for ever) or more seconds")
    return value


def simulate(
    nats_url: Annotated[
        str, typer.Option(envvar="TETHER_NATS_URL", help="NATS server with JetStream.")
    ] = "nats://127.0.0.1:4222",
    port: Annotated[int, typer.Option(help="Data port (/simulering, /orders).")] = 7003,
    control_port: Annotated[int, typer.Option(help="Control port (/faults, /stats).")] = 7103,
    token: Annotated[
        str,
        typer.Option(
            envvar="TETHER_PAYMENTS_OPPDRAG_TOKEN", help="Bearer token the data port requires."
        ),
    ] = DEFAULT_TOKEN,
    control_token: ControlTokenOption = None,
    stream_max_age: Annotated[
        float,
        typer.Option(
            callback=_not_negative,  # as min=0 its range took a column of the help's width
            help="Seconds the orders and receipts streams keep a message when this creates "
            "them (0: for ever); streams that exist keep their own limits.",
        ),
    ] = STREAM_MAX_AGE_S,
) -> None:
    """Run the payment system simulator until Ctrl-C.

    Orders on oppdrag.orders.v1, receipts on oppdrag.receipts.v1.

    Faults: PUT http://127.0.0.1:<control-port>/faults {"mode": "08"} with the header
    Authorization: Bearer <control token> (printed at start).

    Modes: none, 04, 08, 12, 08-untrimmed, slow, silent, duplicate, down.
    """
    server = build_simulator(
        nats_url=nats_url,
        port=port,
        control_port=control_port,
        token=token,
        topology=Topology(max_age_s=stream_max_age),
        control_token=configured_token(control_token),
    )
    console = Console()
    console.print(f"oppdrag simulator on {server.url}, control on {server.control_url}")
    server.serve_alone()
