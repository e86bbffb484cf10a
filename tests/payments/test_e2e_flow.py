"""End to end: service, jobs, real NATS JetStream, the payment system simulator, PostgreSQL.

After each message, what the simulated payment system pays per day must equal what the message
says, so every order's lines (chains, stop lines, references) are checked by its ledger.
"""

from __future__ import annotations

import asyncio
import json
from datetime import date
from typing import Any

import pytest

from tether.core.errors import NotFound
from tether.core.events import ensure_stream

from .conftest import Harness, day, expected, june, message


async def test_first_order_then_added_period_then_changed_amount(harness: Harness) -> None:
    first = june(3, 14)
    s = await harness.send("k1", message(first))
    assert s.status == "OK", s.body
    assert harness.paid() == expected(first)
    added = first + june(17, 21, periode="m2")
    assert (await harness.send("k2", message(added))).status == "OK"
    assert harness.paid() == expected(added)
    changed = june(3, 14, 200) + june(17, 21, periode="m2")
    s = await harness.send("k3", message(changed))
    assert s.status == "OK"
    assert [line["beløp"] for line in s.body["detaljer"]["linjer"]] == [200]
    assert harness.paid() == expected(changed)
    orders = await harness.service.orders("sak1")
    assert [o.state for o in orders] == ["OK", "OK", "OK"]
    assert "<kodeEndring>NY</kodeEndring>" in orders[0].xml
    assert all("<kodeEndring>ENDR</kodeEndring>" in o.xml for o in orders[1:])


async def test_shortened_and_moved_periods(harness: Harness) -> None:
    await harness.send("k1", message(june(3, 14)))
    shorter = june(3, 7)
    assert (await harness.send("k2", message(shorter))).status == "OK"
    assert harness.paid() == expected(shorter)
    moved = june(5, 7)
    s = await harness.send("k3", message(moved))
    assert s.status == "OK"
    assert harness.paid() == expected(moved)


async def test_stop_by_omission_and_by_empty_message_then_come_back(harness: Harness) -> None:
    both = june(3, 7) + june(10, 14, periode="m2")
    await harness.send("k1", message(both))
    only_first = june(3, 7)
    s = await harness.send("k2", message(only_first))
    assert s.status == "OK"
    assert [line["beløp"] for line in s.body["detaljer"]["linjer"]] == [0]  # a stop line
    assert harness.paid() == expected(only_first)
    s = await harness.send("k3", message([]))
    assert s.status == "OK"
    assert harness.paid() == {}
    case = await harness.service.case("sak1")
    assert case.active_uids == frozenset()  # paid before, nothing active: not "never paid"
    back = june(10, 14, periode="m2")
    assert (await harness.send("k4", message(back))).status == "OK"
    assert harness.paid() == expected(back)
    last = (await harness.service.orders("sak1"))[-1].xml
    assert "<refDelytelseId>" in last  # chained to the stopped chain


async def test_several_klassekoder_and_two_periods_in_one_order(harness: Harness) -> None:
    days = (
        june(3, 7, 100)
        + june(10, 14, 150)
        + [day(date(2024, 6, 14), 500, periode="m1", type_="DagpengerFerietillegg")]
    )
    s = await harness.send("k1", message(days))
    assert s.status == "OK"
    kinds = sorted(line["klassekode"] for line in s.body["detaljer"]["linjer"])
    assert kinds == ["DAGPENGER", "DAGPENGER", "DAGPENGERFERIE"]
    assert harness.paid() == expected(days)
    assert len(await harness.service.orders("sak1")) == 1


async def test_duplicate_content_under_a_new_key_is_bare_ok(harness: Harness) -> None:
    await harness.send("k1", message(june(3, 14)))
    s = await harness.send("k2", message(june(3, 14)))
    assert s.status == "OK" and s.body["detaljer"] is None
    assert len(await harness.service.orders("sak1")) == 1
    assert harness.sim.state.calls["orders"] == 1


async def test_04_is_ok_with_the_warning(harness: Harness) -> None:
    await harness.fault("04")
    s = await harness.send("k1", message(june(3, 14)))
    assert s.status == "OK" and s.body["error"]["statusCode"] == 200
    assert (await harness.service.case("sak1")).active_uids


async def test_08_keeps_the_previous_state_and_a_later_message_is_still_right(
    harness: Harness,
) -> None:
    await harness.send("k1", message(june(3, 14)))
    await harness.fault("08")
    s = await harness.send("k2", message(june(3, 14, 200)))
    assert s.status == "FEILET" and s.body["error"]["statusCode"] == 400
    assert harness.paid() == expected(june(3, 14))
    await harness.fault("none")
    later = june(3, 14, 300)
    assert (await harness.send("k3", message(later))).status == "OK"
    assert harness.paid() == expected(later)


async def test_untrimmed_08_is_400_and_12_is_500(harness: Harness) -> None:
    await harness.fault("08-untrimmed")
    s = await harness.send("k1", message(june(3, 14)))
    assert s.status == "FEILET" and s.body["error"]["statusCode"] == 400
    await harness.fault("12")
    s = await harness.send("k2", message(june(3, 13)))
    assert s.status == "FEILET" and s.body["error"]["statusCode"] == 500
    await harness.fault("none")
    assert (await harness.send("k3", message(june(3, 12)))).status == "OK"  # still NY: works


def _key_order(value: Any) -> list[Any]:
    """Every object's keys in order, depth first: what a consumer iterating the JSON sees."""
    if isinstance(value, dict):
        return [[k, _key_order(v)] for k, v in value.items()]
    if isinstance(value, list):
        return [_key_order(v) for v in value]
    return []


async def test_statuses_are_published_on_nats(harness: Harness, js: Any) -> None:
    """Each status goes out once, in order, as the same JSON object (values and key order) as
    the stored status the endpoints show; text stays UTF-8 (``beløp``, not an escape)."""
    await harness.send("k1", message(june(3, 14)))
    s = harness.service.settings
    sub = await js.pull_subscribe(s.status_subject, stream=s.status_stream)
    published: list[dict[str, Any]] = []
    while not published or published[-1]["status"] != "OK":
        for msg in await sub.fetch(10, timeout=5):
            assert msg.headers["Transaction-ID"] == "k1"
            assert "beløp".encode() in msg.data
            published.append(json.loads(msg.data))
            await msg.ack()
    stored = [row.body for row in await harness.service.statuses("sak1")]
    assert [p["status"] for p in published] == ["MOTTATT", "HOS_OPPDRAG", "OK"]
    assert published == stored
    assert [_key_order(p) for p in published] == [_key_order(b) for b in stored]


async def test_a_lost_receipt_is_chased_and_the_case_moves_on(harness: Harness) -> None:
    await harness.fault("silent")  # applies the order, sends no receipt
    s = await harness.send("k1", message(june(3, 14)), wait_s=30)
    assert s.status == "OK"  # booked from the payment system's answer about the order
    assert harness.sim.state.calls["order_lookups"] >= 1
    await harness.fault("none")
    later = june(3, 14, 200)
    assert (await harness.send("k2", message(later))).status == "OK"
    assert harness.paid() == expected(later)


async def test_metrics_count_statuses_and_waiting_orders(harness: Harness) -> None:
    from prometheus_client import REGISTRY

    from tether.payments import console

    def ok_count() -> float:
        return REGISTRY.get_sample_value("tether_payments_statuses_total", {"status": "OK"}) or 0

    async def gauges() -> dict[str, float]:
        async with harness.service.pool.connection() as conn:
            cur = await conn.execute(console.queries["payments_overview"], {"examples": 10})
            row = await cur.fetchone()
        assert row is not None
        return {g.name: g.value for g in console.build_panel(row).gauges}

    before = ok_count()
    assert (await gauges())["tether_payments_orders_waiting"] == 0
    await harness.fault("silent")
    await harness.service.submit("k1", message(june(3, 14)))
    waiting = await gauges()  # the order exists from intake on, sent or not
    assert waiting["tether_payments_orders_waiting"] == 1
    assert waiting["tether_payments_oldest_waiting_seconds"] >= 0
    assert (await harness.service.wait_status("k1", 30)).status == "OK"  # chased
    assert ok_count() >= before + 1
    assert (await gauges())["tether_payments_orders_waiting"] == 0


async def test_broker_intake_keyed_by_header_and_a_message_without_key_is_dropped(
    harness: Harness, js: Any, caplog: pytest.LogCaptureFixture
) -> None:
    s = harness.service.settings
    await ensure_stream(js, s.intake_stream, s.intake_subject)
    await js.publish(s.intake_subject, message(june(3, 7)), stream=s.intake_stream)
    await js.publish(
        s.intake_subject,
        message(june(3, 14)),
        stream=s.intake_stream,
        headers={"Transaction-ID": "nats-1"},
    )
    for _ in range(200):
        try:
            status = await harness.service.wait_status("nats-1", 20)
            break
        except NotFound:
            await asyncio.sleep(0.05)
    assert status.status == "OK"
    assert harness.paid() == expected(june(3, 14))
    assert len(await harness.service.orders("sak1")) == 1  # the keyless one never became one
    assert any("no Transaction-ID" in r.getMessage() for r in caplog.records)  # and says why


async def test_two_receipts_for_one_order_are_booked_once(harness: Harness) -> None:
    await harness.fault("duplicate")
    assert (await harness.send("k1", message(june(3, 14)))).status == "OK"
    later = june(3, 14, 200)
    assert (await harness.send("k2", message(later))).status == "OK"
    assert harness.paid() == expected(later)
    async with harness.service.pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) AS n FROM pay.status WHERE status = 'OK'")
        row = await cur.fetchone()
    assert row is not None and row["n"] == 2


async def test_orders_wait_in_the_queue_while_the_payment_system_is_down(harness: Harness) -> None:
    await harness.fault("down")
    s = await harness.send("k1", message(june(3, 14)), wait_s=3)
    assert s.status == "HOS_OPPDRAG"  # on the queue, not yet answered
    await harness.fault("none")
    assert (await harness.service.wait_status("k1", 30)).status == "OK"
    assert harness.paid() == expected(june(3, 14))
    assert harness.sim.state.calls["orders"] == 1
