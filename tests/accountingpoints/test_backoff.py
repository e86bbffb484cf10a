"""Backoff that events respect: an event during a backoff makes the AP due at most the first
retry delay after its failure, so a storm of them adds no attempt; every delay is jittered; a
datahub 404 repeated is flagged as gone and checked rarely."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from tether.accountingpoints import retry
from tether.accountingpoints.domain import make_gsrn
from tether.accountingpoints.service import AccountingPointService
from tether.accountingpoints.settings import AccountingPointSettings
from tether.accountingpoints.simulator import DatahubFault, start_simulator
from tether.accountingpoints.tasks import run_worker
from tether.core.breaker import CircuitOpen
from tether.core.errors import UpstreamUnavailable

from .conftest import RETRY_BASE_S, TOKEN, Sim, seed_never_synced, sql


@pytest.fixture
def sim() -> Iterator[Sim]:
    server, hub = start_simulator(count=10, seed=11, token=TOKEN)
    yield server, hub
    server.stop()


async def work(service: AccountingPointService) -> Any:
    return await run_worker(service, stop=asyncio.Event(), once=True)


async def states(service: AccountingPointService, gsrns: list[str]) -> dict[str, dict[str, Any]]:
    rows = await sql(
        service,
        "SELECT a.gsrn, s.attempts, s.next_sync_at, s.requested_at, s.last_error_at,"
        " s.last_error_reason, s.next_sync_at <= now() AS due "
        "FROM ap.accounting_point_sync s JOIN ap.accounting_point a ON a.id = s.accounting_point_id"
        " WHERE a.gsrn = ANY(%s)",
        gsrns,
    )
    return {r["gsrn"]: r for r in rows}


async def test_events_during_a_backoff_are_remembered_not_obeyed(
    service: AccountingPointService, sim: Sim
) -> None:
    server, hub = sim
    gsrn = hub.gsrns[0]
    await seed_never_synced(service, [gsrn])
    server.set_mode(DatahubFault.ERROR_500)
    assert (await work(service)).outcomes == {"upstream_5xx": 1}
    [before] = (await states(service, [gsrn])).values()
    calls = server.state.calls[gsrn]

    for _ in range(20):
        outcome = await service.handle_changed([gsrn])
        assert outcome.accepted == [gsrn]
        await work(service)
    [after] = (await states(service, [gsrn])).values()
    assert server.state.calls[gsrn] == calls  # no attempt before the backoff ends
    assert after["attempts"] == before["attempts"] == 1  # counts only real attempts
    assert after["next_sync_at"] == before["next_sync_at"] and not after["due"]
    assert after["requested_at"] is not None  # remembered

    server.set_mode(DatahubFault.NONE)
    await sql(service, "UPDATE ap.accounting_point_sync SET next_sync_at = now()")
    assert (await work(service)).outcomes == {"ok": 1}  # the next attempt honours it
    [synced] = (await states(service, [gsrn])).values()
    assert synced["attempts"] == 0 and synced["last_error_at"] is None and not synced["due"]


async def test_an_event_cuts_a_long_backoff_to_the_first_retry_delay(
    service: AccountingPointService, sim: Sim, caplog: pytest.LogCaptureFixture
) -> None:
    """An event for an AP backing off was logged as "1 accounting point(s) due now", then waited
    out the backoff (hours after a few failures, a week once gone). The event is news: the AP is
    due at most the first retry delay after its last failure, and the log says which wait."""
    server, hub = sim
    gsrn = hub.gsrns[0]
    await seed_never_synced(service, [gsrn])
    server.set_mode(DatahubFault.ERROR_500)
    assert (await work(service)).outcomes == {"upstream_5xx": 1}
    long_backoff = "UPDATE ap.accounting_point_sync SET next_sync_at = now() + interval '6 hours'"
    await sql(service, long_backoff)  # as after many failures
    caplog.set_level(logging.INFO)

    await service.handle_changed([gsrn])  # it has just failed: due one first delay after that
    [state] = (await states(service, [gsrn])).values()
    assert state["next_sync_at"] == state["last_error_at"] + timedelta(seconds=RETRY_BASE_S)
    assert not state["due"]
    assert "0 accounting point(s) due now, 1 waiting for their retry" in caplog.text

    await sql(service, long_backoff + ", last_error_at = now() - interval '1 hour'")
    caplog.clear()
    await service.handle_changed([gsrn])  # its failure was an hour ago: due now
    assert "1 accounting point(s) due now, 0 waiting for their retry" in caplog.text
    server.set_mode(DatahubFault.NONE)
    assert (await work(service)).outcomes == {"ok": 1}


async def test_aps_that_fail_together_retry_apart(
    service: AccountingPointService, sim: Sim
) -> None:
    server, hub = sim
    gsrns = hub.gsrns[:8]
    await seed_never_synced(service, gsrns)
    server.set_mode(DatahubFault.ERROR_500)
    await work(service)
    found = await states(service, gsrns)
    waits = [r["next_sync_at"] - r["last_error_at"] for r in found.values()]
    assert len(set(waits)) > 1  # jittered
    full = timedelta(seconds=RETRY_BASE_S)
    assert all(full * (1 - retry.JITTER) <= w <= full for w in waits)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"gone_after_404s": 3, "gone_recheck_s": 7 * 24 * 3600.0, "breaker_failure_threshold": 2}


async def test_lookups_and_syncs_share_one_breaker(
    service: AccountingPointService, sim: Sim
) -> None:
    server, hub = sim
    server.set_mode(DatahubFault.ERROR_500)
    looked_up = hub.gsrns[5]
    # the failing answer comes after 1 s, so all ten lookups (each reads the database first)
    # join the one call in flight even on a loaded machine: a lookup that reached the datahub
    # after that call had failed would make a second call, as it should, and open the breaker
    hub.delays[looked_up] = 1.0
    results = await asyncio.gather(
        *(service.lookup(end_user="987654321", gsrn=looked_up) for _ in range(10)),
        return_exceptions=True,
    )
    del hub.delays[looked_up]
    assert all(isinstance(r, UpstreamUnavailable) for r in results)
    assert (await service.breaker.state()).failures == 1  # ten concurrent lookups, one call
    await seed_never_synced(service, [hub.gsrns[6]])
    assert (await work(service)).outcomes == {"upstream_5xx": 1}  # second failure: open
    assert (await service.breaker.state()).state == "open"

    with pytest.raises(CircuitOpen):
        await service.lookup(end_user="987654321", gsrn=looked_up)
    server.set_mode(DatahubFault.NONE)
    with pytest.raises(CircuitOpen):  # still open though the datahub is back: not even tried
        await service.lookup(end_user="987654321", gsrn=looked_up)
    assert server.state.calls[looked_up] == 1  # the one failed call; none while open
    await sql(service, "UPDATE ap.accounting_point_sync SET next_sync_at = now()")
    assert (await work(service)).claimed == 0  # the worker spends no attempt while it is open
    [state] = (await states(service, [hub.gsrns[6]])).values()
    assert state["attempts"] == 1


async def test_a_worker_with_nothing_due_does_not_keep_the_probe_from_lookups(
    service: AccountingPointService, sim: Sim
) -> None:
    """The worker's poll took the probe lease and, with nothing due, made no call and reported
    nothing: the circuit stayed half-open and every lookup got 503 though the datahub was back."""
    server, hub = sim
    server.set_mode(DatahubFault.ERROR_500)
    for gsrn in hub.gsrns[:2]:  # two failures: open
        with pytest.raises(UpstreamUnavailable):
            await service.register_controllable_unit(gsrn=gsrn, name="cu")
    assert (await service.breaker.state()).state == "open"
    server.set_mode(DatahubFault.NONE)
    await sql(  # the open time has passed: the next caller probes
        service,
        "UPDATE tether.circuit_breaker SET open_until = now() WHERE name = %s",
        service.breaker.name,
    )
    assert await service.claim_due(limit=10, worker="idle") == []  # took the probe, nothing due
    await service.register_controllable_unit(gsrn=hub.gsrns[0], name="cu")  # probes: succeeds
    assert (await service.breaker.state()).state == "closed"


async def test_repeated_404s_flag_the_ap_as_gone(service: AccountingPointService, sim: Sim) -> None:
    server, _ = sim
    unknown = make_gsrn("7070575", 999_999)  # valid, but the datahub has no such AP
    await seed_never_synced(service, [unknown])
    reasons = []
    for _ in range(3):
        await sql(service, "UPDATE ap.accounting_point_sync SET next_sync_at = now()")
        assert (await work(service)).outcomes == {"upstream_not_found": 1}
        reasons.append((await states(service, [unknown]))[unknown]["last_error_reason"])
    assert reasons == ["upstream_not_found", "upstream_not_found", retry.GONE]
    state = (await states(service, [unknown]))[unknown]
    recheck = AccountingPointSettings().gone_recheck_s
    assert state["next_sync_at"] - state["last_error_at"] >= timedelta(
        seconds=recheck * (1 - retry.JITTER)
    )
    assert server.state.calls[unknown] == 3
