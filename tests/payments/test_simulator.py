"""The payment system simulator over a real NATS JetStream and real HTTP: its checks, its receipts,
its simulations and every fault mode. The ledger model is also checked against the line rules:
after every order it pays exactly what the message asked for."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.payments.conftest import unique_topology
from tests.payments.test_domain import DAG, FERIE, NOW, day, days, message
from tether.payments import oppdrag
from tether.payments.domain import plan, split, uid_for
from tether.payments.models import CaseState, DagpengerMessage, Order, Receipt
from tether.payments.simulated_oppdrag import EXISTS, UNKNOWN_CASE, Ledger
from tether.payments.simulator import DEFAULT_TOKEN, OppdragSimulator, Topology, start_simulator

AUTH = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}


@pytest.fixture
def topology() -> Topology:
    return unique_topology()


@pytest.fixture
def sim(nats_url: str, topology: Topology) -> Iterator[OppdragSimulator]:
    server = start_simulator(nats_url, topology=topology)
    yield server
    server.stop()


@dataclass
class Wire:
    """tether's side of the queue: send orders, read receipts."""

    js: Any
    receipts: Any
    topology: Topology

    async def send(self, order: Order | str, msg_id: str | None = None) -> None:
        xml = order if isinstance(order, str) else oppdrag.build_order_xml(order)
        await self.js.publish(
            self.topology.orders_subject,
            xml.encode(),
            headers={"Nats-Msg-Id": msg_id or uuid.uuid4().hex},
        )

    async def receipt(self) -> tuple[Receipt, str, dict[str, str]]:
        [msg] = await self.receipts.fetch(1, timeout=20)
        await msg.ack()
        return oppdrag.parse_receipt(msg.data), msg.data.decode(), dict(msg.headers or {})


@pytest.fixture
async def wire(js: Any, topology: Topology, sim: OppdragSimulator) -> AsyncIterator[Wire]:
    receipts = await js.pull_subscribe(
        topology.receipts_subject, durable="tether", stream=topology.receipts_stream
    )
    yield Wire(js=js, receipts=receipts, topology=topology)
    await receipts.unsubscribe()


def first_order(sak: str = "SAK1", **kw: Any) -> Order:
    result = plan(message(days("2024-06-03", "2024-06-14"), sakId=sak), None, now=NOW, **kw)
    assert result.order is not None
    return result.order


async def control(sim: OppdragSimulator, mode: str, **extra: Any) -> None:
    async with httpx.AsyncClient(base_url=sim.control_url, headers=sim.control_headers) as http:
        answer = await http.put("/faults", json={"mode": mode, **extra})
        answer.raise_for_status()


async def stats(sim: OppdragSimulator) -> dict[str, int]:
    async with httpx.AsyncClient(base_url=sim.control_url, headers=sim.control_headers) as http:
        calls: dict[str, int] = (await http.get("/stats")).json()["calls"]
        return calls


# --- the real system's checks ---------------------------------------------------------------


async def test_a_first_order_is_accepted_and_booked(sim: OppdragSimulator, wire: Wire) -> None:
    order = first_order()
    await wire.send(order, "m-1")
    receipt, xml, headers = await wire.receipt()
    assert (receipt.alvorlighetsgrad, receipt.nokkel_avstemming) == ("00", order.nokkel_avstemming)
    assert headers["Oppdrag-Msg-Id"] == "m-1"
    assert "<oppdrag-110>" in xml and "<mmel>" in xml
    view = sim.ledger.view("SAK1")
    assert view is not None and view["chains"][0]["total"] == 1000  # type: ignore[index]


async def test_ny_on_an_existing_case_is_refused(sim: OppdragSimulator, wire: Wire) -> None:
    await wire.send(first_order())
    await wire.send(first_order(nokkel="second"))
    assert (await wire.receipt())[0].alvorlighetsgrad == "00"
    refused, _, _ = await wire.receipt()
    assert (refused.alvorlighetsgrad, refused.beskr_melding) == ("08", EXISTS)


async def test_endr_on_an_unknown_case_is_refused(sim: OppdragSimulator, wire: Wire) -> None:
    await wire.send(replace(first_order(), kode_endring="ENDR"))
    receipt, _, _ = await wire.receipt()
    assert (receipt.alvorlighetsgrad, receipt.beskr_melding) == ("08", UNKNOWN_CASE)
    assert sim.ledger.view("SAK1") is None


async def test_an_unknown_reference_is_refused(sim: OppdragSimulator, wire: Wire) -> None:
    order = first_order()
    [line] = order.lines
    await wire.send(replace(order, lines=(replace(line, ref_delytelse_id="NOPE"),)))
    receipt, _, _ = await wire.receipt()
    assert receipt.alvorlighetsgrad == "08" and "NOPE" in (receipt.beskr_melding or "")


async def test_a_duplicate_line_id_is_refused(sim: OppdragSimulator, wire: Wire) -> None:
    order = first_order()
    await wire.send(order)
    again = replace(order, kode_endring="ENDR", nokkel_avstemming="again")
    await wire.send(again)
    assert (await wire.receipt())[0].alvorlighetsgrad == "00"
    receipt, _, _ = await wire.receipt()
    assert receipt.alvorlighetsgrad == "08" and "finnes fra før" in (receipt.beskr_melding or "")


async def test_a_redelivered_order_is_not_booked_twice(sim: OppdragSimulator, wire: Wire) -> None:
    order = first_order()
    await wire.send(order, "same-id")
    await wire.send(order, "same-id-after-a-crash")  # re-sent with a new message id
    first, second = await wire.receipt(), await wire.receipt()
    assert first[0].alvorlighetsgrad == second[0].alvorlighetsgrad == "00"
    assert first[1] == second[1]
    assert (await stats(sim))["applied"] == 1


async def test_an_unreadable_order_is_skipped(sim: OppdragSimulator, wire: Wire) -> None:
    await wire.send("<not-an-order/>")
    await wire.send(first_order())
    assert (await wire.receipt())[0].alvorlighetsgrad == "00"
    assert (await stats(sim))["unreadable"] == 1


# --- HTTP: does it have this order, simulations ---------------------------------------------


async def test_it_can_be_asked_whether_it_has_an_order(sim: OppdragSimulator, wire: Wire) -> None:
    order = first_order()
    await wire.send(order, "msg-7")
    await wire.receipt()
    async with httpx.AsyncClient(base_url=sim.url, headers=AUTH) as http:
        by_key = await http.get(f"/orders/{order.nokkel_avstemming}")
        by_msg = await http.get("/orders/msg-7")
        missing = await http.get("/orders/never-sent")
        anonymous = await http.get("/orders/msg-7", headers={"Authorization": "Bearer wrong"})
    assert by_key.status_code == by_msg.status_code == 200
    assert by_msg.json()["alvorlighetsgrad"] == "00" and by_msg.json()["applied"] is True
    assert (missing.status_code, anonymous.status_code) == (404, 401)


async def test_an_order_id_matches_with_or_without_dashes(
    sim: OppdragSimulator, wire: Wire
) -> None:
    order_id = uuid.uuid4()
    await wire.send(first_order(nokkel=order_id.hex))
    await wire.receipt()
    async with httpx.AsyncClient(base_url=sim.url, headers=AUTH) as http:
        assert (await http.get(f"/orders/{order_id}")).status_code == 200
        assert (await http.get(f"/orders/{order_id.hex}")).status_code == 200
        assert (await http.get(f"/orders/{uuid.uuid4()}")).status_code == 404


async def simulate(sim: OppdragSimulator, order: Order) -> httpx.Response:
    async with httpx.AsyncClient(base_url=sim.url, headers=AUTH) as http:
        return await http.post("/simulering", json=oppdrag.simulation_request(order))


async def test_simulations_show_before_after_and_postings(
    sim: OppdragSimulator, wire: Wire
) -> None:
    msg = message(days("2024-06-03", "2024-06-14"))
    paid = plan(msg, None, now=NOW)
    assert paid.order is not None
    new = (await simulate(sim, paid.order)).json()
    assert [(p["tidligereUtbetalt"], p["nyttBeløp"]) for p in new["perioder"]] == [(0, 1000)]
    await wire.send(paid.order)
    await wire.receipt()
    raised = plan(message(days("2024-06-03", "2024-06-14", 150)), paid.candidate, now=NOW)
    assert raised.order is not None
    [period] = (await simulate(sim, raised.order)).json()["perioder"]
    assert (period["fom"], period["tom"], period["tidligereUtbetalt"], period["nyttBeløp"]) == (
        "2024-06-03",
        "2024-06-14",
        1000,
        1500,
    )
    stopped = plan(message([]), paid.candidate, now=NOW)
    assert stopped.order is not None
    [gone] = (await simulate(sim, stopped.order)).json()["perioder"]
    assert (gone["tidligereUtbetalt"], gone["nyttBeløp"]) == (1000, 0)
    assert {"type": "FEIL", "klassekode": "DAGPENGER", "beløp": 1000} in gone["posteringer"]
    assert sim.ledger.view("SAK1")["chains"][0]["total"] == 1000  # type: ignore[index]


async def test_simulation_errors(sim: OppdragSimulator) -> None:
    refused = await simulate(sim, replace(first_order(), kode_endring="ENDR"))
    assert (refused.status_code, refused.json()["beskrMelding"]) == (400, UNKNOWN_CASE)
    async with httpx.AsyncClient(base_url=sim.url) as http:
        garbage = await http.post("/simulering", json={"oppdrag": "<x"}, headers=AUTH)
        anonymous = await http.post("/simulering", json={})
    assert (garbage.status_code, anonymous.status_code) == (400, 401)


# --- fault modes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "code", "booked"),
    [("04", "04", True), ("08", "08", False), ("12", "12", False), ("08-untrimmed", "08 ", False)],
)
async def test_receipt_code_faults(
    sim: OppdragSimulator, wire: Wire, mode: str, code: str, booked: bool
) -> None:
    await control(sim, mode)
    await wire.send(first_order())
    receipt, xml, _ = await wire.receipt()
    assert f"<alvorlighetsgrad>{code}</alvorlighetsgrad>" in xml
    assert receipt.alvorlighetsgrad == code.strip()
    assert (sim.ledger.view("SAK1") is not None) is booked


async def test_slow_still_answers(sim: OppdragSimulator, wire: Wire) -> None:
    await control(sim, "slow", slow_ms=200)
    await wire.send(first_order())
    assert (await wire.receipt())[0].alvorlighetsgrad == "00"


async def test_silent_books_but_sends_no_receipt(sim: OppdragSimulator, wire: Wire) -> None:
    await control(sim, "silent")
    await wire.send(first_order("SAK1"))
    await wire.send(first_order("SAK2"))
    await control(sim, "none")
    await wire.send(first_order("SAK3"))
    receipt, _, _ = await wire.receipt()  # the first receipt is the third order's
    assert receipt.fagsystem_id == "SAK3"
    assert sim.ledger.view("SAK1") is not None and sim.ledger.view("SAK2") is not None


async def test_duplicate_sends_every_receipt_twice(sim: OppdragSimulator, wire: Wire) -> None:
    await control(sim, "duplicate")
    await wire.send(first_order("SAK1"))
    one, two = await wire.receipt(), await wire.receipt()
    assert one[1] == two[1] and one[2]["Nats-Msg-Id"] != two[2]["Nats-Msg-Id"]
    await control(sim, "none")
    await wire.send(first_order("SAK2"))
    assert (await wire.receipt())[0].fagsystem_id == "SAK2"
    assert (await stats(sim))["applied"] == 2


async def test_down_closes_http_and_stops_consuming_until_up(
    sim: OppdragSimulator, wire: Wire
) -> None:
    await control(sim, "down")
    with pytest.raises(httpx.ConnectError):
        await simulate(sim, first_order())
    await wire.send(first_order())
    assert (await stats(sim)).get("orders", 0) == 0
    await control(sim, "none")
    assert (await wire.receipt())[0].alvorlighetsgrad == "00"
    assert (await simulate(sim, first_order("SAK9"))).status_code == 200


async def test_an_unknown_mode_is_refused(sim: OppdragSimulator) -> None:
    async with httpx.AsyncClient(base_url=sim.control_url, headers=sim.control_headers) as http:
        assert (await http.put("/faults", json={"mode": "13"})).status_code == 422


def test_a_stop_line_for_an_unknown_line_is_refused() -> None:
    ledger = Ledger()
    paid = plan(message(days("2024-06-03", "2024-06-14")), None, now=NOW)
    assert paid.order is not None
    ledger.apply(paid.order)
    stop = plan(message([]), paid.candidate, now=NOW).order
    assert stop is not None and ledger.check(stop).alvorlighetsgrad == "00"
    [line] = stop.lines
    wrong = replace(stop, lines=(replace(line, delytelse_id="UNKNOWN"),))
    assert ledger.check(wrong).beskr_melding == "Delytelse UNKNOWN finnes ikke"


# --- the ledger model agrees with the line rules ------------------------------------------------


def expected_amounts(msg: DagpengerMessage) -> dict[tuple[str, date], int]:
    """DAG pays each weekday of a period, ENG its amount once on fom."""
    found = {}
    for u in split(msg):
        for p in u.periods:
            if u.type_sats == "ENG":
                found[(u.uid, p.fom)] = p.belop
                continue
            found.update(
                {
                    (u.uid, p.fom + timedelta(n)): p.belop
                    for n in range((p.tom - p.fom).days + 1)
                    if (p.fom + timedelta(n)).weekday() < 5
                }
            )
    return found


def ledger_amounts(ledger: Ledger, state: CaseState) -> dict[tuple[str, date], int]:
    """What every chain of the case pays, by the uid whose chain it is (deleted ones too)."""
    case = ledger.cases["SAK1"]
    uid_of = {case.chain_of[c.last_line_id]: uid for uid, c in state.confirmed.items()}
    found = {}
    for chain in case.chains:
        found.update({(uid_of[chain], d): v for d, v in case.payments(chain).items()})
    return found


def test_the_ledger_pays_what_every_message_in_a_history_asks() -> None:
    history = [
        days("2024-06-03", "2024-06-14"),
        days("2024-06-03", "2024-06-14", 200),
        days("2024-06-07", "2024-06-14", 200),
        days("2024-06-07", "2024-06-10", 200) + days("2024-06-17", "2024-06-21", meldeperiode="m2"),
        days("2024-06-03", "2024-06-05", 300) + days("2024-06-06", "2024-06-12", 100),
        [],
        [*days("2024-06-03", "2024-06-04", 50), day("2024-06-05", 900, type_=FERIE)],
        days("2024-06-03", "2024-06-14", 50) + days("2024-06-17", "2024-06-19", meldeperiode="m2"),
    ]
    ledger, state = Ledger(), None
    for n, utbetalinger in enumerate(history):
        msg = message(utbetalinger, behandlingId=f"B{n}")
        result = plan(msg, state, now=datetime(2024, 7, 1, n))
        assert result.order is not None
        outcome = ledger.receive(oppdrag.build_order_xml(result.order), f"m{n}", "none")
        assert outcome is not None and outcome[0].verdict.alvorlighetsgrad == "00", outcome
        state = result.candidate
        assert ledger_amounts(ledger, state) == expected_amounts(msg)
        paid = ledger_amounts(ledger, state)
        for d in msg.utbetalinger:  # every weekday the message asks for, straight from its days
            if d["utbetaltBeløp"] > 0 and d["utbetalingstype"] == DAG and d["dato"].weekday() < 5:
                uid = uid_for("DAGPENGER", msg.sak_id, d["meldeperiode"], "DAGPENGER")
                assert paid.get((uid, d["dato"])) == d["utbetaltBeløp"], (d, n)


def _random_case(rng: random.Random) -> list[dict[str, Any]]:
    """Up to three meldeperioder of two weeks, each with runs of days at random amounts
    (weekdays only, or in some meldeperioder weekend days too)."""
    found: list[dict[str, Any]] = []
    for n in (1, 2, 3):
        if rng.random() < 0.3:
            continue
        start = date(2024, 6, 3) + timedelta(14 * n)
        weekends = rng.random() < 0.3
        offset = 0
        while offset < 14:
            run, amount = rng.randint(1, 6), rng.choice([100, 200, 300])
            if rng.random() > 0.15:
                for d in (start + timedelta(offset + k) for k in range(run)):
                    if d < start + timedelta(14) and (weekends or d.weekday() < 5):
                        found.append(day(d.isoformat(), amount, meldeperiode=f"m{n}"))
            offset += run
        if rng.random() < 0.3:
            found.append(day(start.isoformat(), 700, meldeperiode=f"m{n}", type_=FERIE))
    return found


@pytest.mark.parametrize("seed", range(40))
def test_random_histories_pay_what_each_message_asks(seed: int) -> None:
    rng = random.Random(seed)
    ledger, state = Ledger(), None
    for n in range(8):
        msg = message(_random_case(rng), behandlingId=f"B{n}")
        result = plan(msg, state, now=datetime(2024, 7, 1, n))
        if result.order is None:
            continue
        outcome = ledger.receive(oppdrag.build_order_xml(result.order), None, "none")
        assert outcome is not None and outcome[0].verdict.alvorlighetsgrad == "00", outcome
        state = result.candidate
        assert ledger_amounts(ledger, state) == expected_amounts(msg)
        paid = ledger_amounts(ledger, state)
        for d in msg.utbetalinger:  # every weekday the message asks for, straight from its days
            if d["utbetaltBeløp"] > 0 and d["utbetalingstype"] == DAG and d["dato"].weekday() < 5:
                uid = uid_for("DAGPENGER", msg.sak_id, d["meldeperiode"], "DAGPENGER")
                assert paid.get((uid, d["dato"])) == d["utbetaltBeløp"], (d, n)
