"""Dry runs end to end: same split and diff, the simulator's simulation service answers, and
nothing about the case is stored (only the message log and its status)."""

from __future__ import annotations

import asyncio

from .conftest import Harness, june, message


async def test_dry_run_on_a_new_case_simulates_and_stores_nothing(harness: Harness) -> None:
    s = await harness.send("d1", message(june(3, 14), dryrun=True))
    assert s.status == "OK" and s.body["simulering"] is True
    periods = s.body["simulation"]["perioder"]
    assert [(p["tidligereUtbetalt"], p["nyttBeløp"]) for p in periods] == [(0, 1000)]
    assert await harness.service.orders("sak1") == []
    assert harness.paid() == {}
    assert harness.sim.state.calls["orders"] == 0


async def test_dry_run_of_a_changed_amount_shows_before_and_after(harness: Harness) -> None:
    await harness.send("k1", message(june(3, 14)))
    s = await harness.send("d1", message(june(3, 14, 200), dryrun=True))
    assert s.status == "OK" and s.body["simulering"] is True
    periods = s.body["simulation"]["perioder"]
    assert [(p["tidligereUtbetalt"], p["nyttBeløp"]) for p in periods] == [(1000, 2000)]
    assert harness.paid()["DAGPENGER"]["2024-06-03"] == 100  # nothing sent
    assert len(await harness.service.orders("sak1")) == 1


async def test_dry_run_of_a_deleted_period_simulates_the_stop(harness: Harness) -> None:
    await harness.send("k1", message(june(3, 7) + june(10, 14, periode="m2")))
    s = await harness.send("d1", message(june(3, 7), dryrun=True))
    assert s.status == "OK"
    periods = s.body["simulation"]["perioder"]
    assert [(p["tidligereUtbetalt"], p["nyttBeløp"]) for p in periods] == [(500, 0)]
    case = await harness.service.case("sak1")
    assert case.active_uids is not None and len(case.active_uids) == 2


async def test_unchanged_dry_run_answers_no_change_explicitly(harness: Harness) -> None:
    await harness.send("k1", message(june(3, 14)))
    s = await harness.send("d1", message(june(3, 14), dryrun=True))
    assert s.status == "OK" and s.body["simulering"] is True
    assert "no postings" in s.body["simulation"]["info"]


async def test_dry_run_on_a_new_case_with_no_positive_days_answers(harness: Harness) -> None:
    s = await harness.send("d1", message(june(3, 7, 0), dryrun=True), wait_s=5)
    assert s.status == "OK" and s.body["simulering"] is True


async def test_dry_run_when_the_simulation_service_is_down_is_feilet(harness: Harness) -> None:
    await harness.fault("down")
    s = await harness.send("d1", message(june(3, 14), dryrun=True))
    assert s.status == "FEILET" and s.body["simulering"] is True
    assert s.body["error"]["statusCode"] == 503
    assert s.body["error"]["doc"] == "docs/payments.md#dry-run"


async def test_a_dry_run_that_fails_unexpectedly_is_feilet_500_and_others_go_on(
    harness: Harness,
) -> None:
    """A processing error that is no rule of the spec (here: a confirmed row of the case that
    no longer reads) answers the dry run with FEILET 500 under its key, as an intake's does;
    it used to escape, and the caller waited for a status that never came."""
    await harness.send("k1", message(june(3, 14)))
    async with harness.service.pool.connection() as conn:
        await conn.execute("UPDATE pay.utbetaling SET data = '{}' WHERE sak_id = 'sak1'")
    s = await harness.send("d1", message(june(3, 14, 200), dryrun=True))
    assert s.status == "FEILET" and s.body["simulering"] is True
    assert s.body["error"]["statusCode"] == 500
    other = await harness.send("d2", message(june(3, 14), sak="sak2", dryrun=True))
    assert other.status == "OK" and other.body["simulering"] is True


async def test_a_dry_run_on_a_case_with_an_order_in_flight_is_refused_409(
    harness: Harness,
) -> None:
    """The case's state changes when the order's receipt comes, and the message the dry run
    stands for would be planned after it: simulated now it answered with amounts nobody will
    pay. It is refused, saying why, and the simulation service is not asked."""
    await harness.fault("down")  # the order waits in the payment system's queue
    await harness.service.submit("k1", message(june(3, 14)))
    for _ in range(400):  # sent to the queue (no final status will come: it is down)
        sent = await harness.service.latest_status("k1")
        if sent.status == "HOS_OPPDRAG":
            break
        await asyncio.sleep(0.05)
    assert sent.status == "HOS_OPPDRAG"
    s = await harness.send("d1", message(june(3, 14, 200), dryrun=True))
    assert s.status == "FEILET" and s.body["simulering"] is True
    error = s.body["error"]
    assert error["statusCode"] == 409 and error["doc"] == "docs/payments.md#dry-run"
    assert "waiting for its receipt" in error["msg"]  # not the 503 of the service being down


async def test_the_simulation_services_verdict_is_read_as_a_receipts(harness: Harness) -> None:
    """The simulation service refuses an order with the payment system's verdict (here 08: a
    NY for a case it holds, after tether lost its record of the case): FEILET 400 with the
    verdict's text, not a 502 quoting the raw answer."""
    await harness.send("k1", message(june(3, 14)))
    async with harness.service.pool.connection() as conn:
        await conn.execute("DELETE FROM pay.utbetaling WHERE sak_id = 'sak1'")
        await conn.execute("DELETE FROM pay.sak WHERE sak_id = 'sak1'")
    s = await harness.send("d1", message(june(3, 14, 200), dryrun=True))
    assert s.status == "FEILET" and s.body["simulering"] is True
    error = s.body["error"]
    assert error["statusCode"] == 400 and error["doc"] == "docs/payments.md#dry-run"
    assert error["msg"] == "simulering avvist (08): Oppdraget finnes fra før"
