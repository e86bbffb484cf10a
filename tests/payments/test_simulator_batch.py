"""The simulator answers a fetched batch of orders together: receipts in order, and an order is
acked only once JetStream acknowledged every receipt of it (else nakked, to be redelivered)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tether.core.jetstream import Publisher
from tether.payments import oppdrag, simulator
from tether.payments.simulator import OppdragSimulator

from .test_simulator import control, first_order


async def test_orders_sent_together_get_their_receipts_in_order(
    sim: OppdragSimulator, js: Any
) -> None:
    top = sim.topology
    saks = [f"SAK{i}" for i in range(12)]  # more than one fetched batch
    receipts = await js.pull_subscribe(
        top.receipts_subject, durable="tether", stream=top.receipts_stream
    )
    acks = [
        await js.publish_async(
            top.orders_subject, oppdrag.build_order_xml(first_order(sak)).encode()
        )
        for sak in saks
    ]
    await asyncio.gather(*acks)
    seen: list[str] = []
    while len(seen) < len(saks):
        for msg in await receipts.fetch(len(saks) - len(seen), timeout=20):
            seen.append(oppdrag.parse_receipt(msg.data).fagsystem_id)
            await msg.ack()
    await receipts.unsubscribe()
    assert seen == saks
    # the simulator counts a receipt once JetStream acknowledged it to the simulator, which
    # can come after this side fetched it
    for _ in range(200):
        if sim.state.calls["receipts"] == len(saks):
            break
        await asyncio.sleep(0.025)
    assert sim.state.calls["receipts"] == len(saks)


class _Order:
    """An order message as nats-py hands it over, remembering whether it was acked or nakked."""

    def __init__(self, sak: str, log: list[str] | None = None) -> None:
        self.sak = sak
        self.data = oppdrag.build_order_xml(first_order(sak)).encode()
        self.headers = {"Nats-Msg-Id": f"m-{sak}"}
        self.answer = ""
        self.log = [] if log is None else log

    async def ack(self) -> None:
        self.answer = "ack"
        self.log.append(f"ack {self.sak}")

    async def nak(self, delay: float | None = None) -> None:
        self.answer = "nak"


@dataclass
class _Answer:
    subject: str
    data: bytes
    headers: dict[str, str] | None = None


class _Nc:
    """A connection whose JetStream stores a receipt, refuses SAK2's and never answers SAK3's."""

    def __init__(self) -> None:
        self.answer: Callable[[Any], Awaitable[None]] | None = None
        self.unanswered: list[str] = []

    def new_inbox(self) -> str:
        return "_INBOX.sim"

    async def subscribe(self, subject: str, cb: Callable[[Any], Awaitable[None]]) -> None:
        self.answer = cb

    async def publish(self, subject: str, data: bytes, reply: str, headers: Any) -> None:
        assert self.answer is not None
        if b"SAK2" in data:
            await self.answer(_Answer(reply, b'{"error":{"code":503,"description":"no stream"}}'))
        elif b"SAK3" in data:
            self.unanswered.append(reply)
        else:
            await self.answer(_Answer(reply, b'{"stream":"OPP_REC","seq":1}'))


async def test_an_order_whose_receipt_was_not_acknowledged_is_nakked(
    sim: OppdragSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(simulator, "RECEIPT_ACK_TIMEOUT_S", 0.05)
    orders = [_Order(sak) for sak in ("SAK1", "SAK2", "SAK3", "SAK4")]
    nc = _Nc()
    receipts = Publisher(nc, "receipts")
    await sim._handle_batch(receipts, orders)
    assert [o.answer for o in orders] == ["ack", "nak", "nak", "ack"]
    assert sim.state.calls["receipts"] == 2
    assert len(nc.unanswered) == 1 and receipts.waiting == {}  # the round is not held for ever
    await receipts._answered(_Answer(nc.unanswered[0], b'{"stream":"OPP_REC","seq":2}'))  # late
    assert all(sim.ledger.view(s) is not None for s in ("SAK2", "SAK3"))  # booked: a redelivery
    # gets the first receipt again, as for any order seen before


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("none", ["judge SAK1", "judge SAK4", "ack SAK1", "ack SAK4"]),
        ("slow", ["judge SAK1", "ack SAK1", "judge SAK4", "ack SAK4"]),
    ],
)
async def test_when_slow_no_order_waits_for_the_next_ones_sleep(
    sim: OppdragSimulator, monkeypatch: pytest.MonkeyPatch, mode: str, expected: list[str]
) -> None:
    """A batch is answered together, but a slow simulator's sleeps (15 s by default) must not
    add up before an order is acked: JetStream would deliver it again."""
    await control(sim, mode, slow_ms=1)
    log: list[str] = []
    receive = sim.ledger.receive

    def judged(xml: bytes, msg_id: str | None, fault: str) -> Any:
        log.append(f"judge {msg_id.removeprefix('m-') if msg_id else ''}")
        return receive(xml, msg_id, fault)

    monkeypatch.setattr(sim.ledger, "receive", judged)
    orders = [_Order(sak, log) for sak in ("SAK1", "SAK4")]
    await sim._handle_batch(Publisher(_Nc(), "receipts"), orders)
    assert log == expected
