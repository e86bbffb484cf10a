"""The datahub circuit's half-open probe is one call: the worker claims one AP under a probe and
goes back to full batches only once it succeeded; a poll with nothing due is no probe."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from tether.accountingpoints.service import AccountingPointService
from tether.accountingpoints.simulator import DatahubFault, start_simulator
from tether.accountingpoints.tasks import WorkerStats, run_worker
from tether.core.errors import UpstreamUnavailable

from .conftest import TOKEN, Sim, seed_never_synced, sql


@pytest.fixture
def sim() -> Iterator[Sim]:
    server, hub = start_simulator(count=10, seed=5, token=TOKEN)
    yield server, hub
    server.stop()


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"breaker_failure_threshold": 1, "breaker_open_s": 600.0}


async def work(service: AccountingPointService) -> WorkerStats:
    return await run_worker(service, stop=asyncio.Event(), once=True)


def received(sim: Sim, *, reset: bool = False) -> int:
    """The calls the simulator's data port received, from its control port's ``/stats``."""
    server, _ = sim
    stats = httpx.get(f"{server.control_url}/stats", headers=server.control_headers).json()
    if reset:
        httpx.delete(f"{server.control_url}/stats", headers=server.control_headers)
    return int(stats["total"])


async def half_open(service: AccountingPointService) -> None:
    """The open time has passed (not waited for): the next caller probes."""
    await sql(
        service,
        "UPDATE tether.circuit_breaker SET open_until = now() WHERE name = %s",
        service.breaker.name,
    )


def probes(service: AccountingPointService) -> float:
    labels = {"circuit": service.breaker.name, "decision": "probe"}
    return REGISTRY.get_sample_value("tether_circuit_decisions_total", labels) or 0.0


async def test_the_half_open_probe_syncs_one_ap_and_full_batches_follow_its_success(
    service: AccountingPointService, sim: Sim, caplog: pytest.LogCaptureFixture
) -> None:
    """A probe used to claim a whole batch: the QA's log said "open after 4 failure(s): 99
    call(s) found the datahub unavailable", so every half-open period sent 99 calls."""
    server, hub = sim
    await seed_never_synced(service, hub.gsrns)
    server.set_mode(DatahubFault.ERROR_500)
    assert (await work(service)).outcomes == {"upstream_5xx": 10}  # one failed batch: open
    assert (await service.breaker.state()).state == "open"
    await sql(service, "UPDATE ap.accounting_point_sync SET next_sync_at = now()")
    received(sim, reset=True)

    await half_open(service)
    caplog.set_level(logging.INFO)
    stats = await work(service)  # the probe fails: open again, nothing more is claimed
    assert stats.claimed == 1 and stats.outcomes == {"upstream_5xx": 1}
    assert received(sim, reset=True) == 1
    assert "1 call(s) found the datahub unavailable" in caplog.text
    assert (await service.breaker.state()).state == "open"

    server.set_mode(DatahubFault.NONE)
    await sql(service, "UPDATE ap.accounting_point_sync SET next_sync_at = now()")
    await half_open(service)
    caplog.clear()
    stats = await work(service)  # the probe succeeds: closed, the other nine in one batch
    assert stats.outcomes == {"ok": 10}
    assert received(sim) == 10
    synced = [r.getMessage() for r in caplog.records if r.getMessage().startswith("synced ")]
    assert synced == [
        "synced 1 accounting point(s), 0 failed",
        "synced 9 accounting point(s), 0 failed",
    ]
    assert (await service.breaker.state()).state == "closed"


async def test_a_poll_with_nothing_due_is_not_logged_or_counted_as_a_probe(
    service: AccountingPointService, sim: Sim, caplog: pytest.LogCaptureFixture
) -> None:
    """Every idle poll of the worker took the probe lease, logged "probing" and counted a probe
    though it made no call: 50 probes in 24 s on the QA's metric, none of them real."""
    server, hub = sim
    server.set_mode(DatahubFault.ERROR_500)
    with pytest.raises(UpstreamUnavailable):
        await service.register_controllable_unit(gsrn=hub.gsrns[0], name="cu")
    assert (await service.breaker.state()).state == "open"
    server.set_mode(DatahubFault.NONE)
    await half_open(service)
    before = probes(service)
    caplog.set_level(logging.INFO)

    for _ in range(5):  # nothing is due: each poll takes the lease and gives it back
        assert await service.claim_due(limit=10, worker="idle") == []
    assert probes(service) == before
    assert "probing" not in caplog.text

    await service.register_controllable_unit(gsrn=hub.gsrns[0], name="cu")  # a real probe
    assert probes(service) == before + 1
    assert caplog.text.count("probing") == 1
    assert (await service.breaker.state()).state == "closed"


DEFAULT_RETRIES = {"breaker_failure_threshold": 1, "breaker_open_s": 600.0, "adapter_retries": 2}


@pytest.mark.parametrize("settings_overrides", [DEFAULT_RETRIES])
async def test_a_probe_is_one_request_though_normal_calls_are_retried(
    service: AccountingPointService, sim: Sim
) -> None:
    """The probe claimed one AP, but the HTTP client retried its 500 twice: 3 calls per
    half-open period where the runbook promises one. Closed, a call still gets its retries."""
    server, hub = sim
    await seed_never_synced(service, hub.gsrns[:2])
    server.set_mode(DatahubFault.ERROR_500)
    assert (await work(service)).outcomes == {"upstream_5xx": 2}
    assert received(sim, reset=True) == 6  # 2 APs, each 1 + 2 retries: opens the circuit
    await sql(service, "UPDATE ap.accounting_point_sync SET next_sync_at = now()")

    await half_open(service)
    assert (await work(service)).outcomes == {"upstream_5xx": 1}  # the worker's probe
    assert received(sim, reset=True) == 1

    await half_open(service)
    with pytest.raises(UpstreamUnavailable):  # a registration's fetch holds the probe
        await service.register_controllable_unit(gsrn=hub.gsrns[5], name="cu")
    assert received(sim, reset=True) == 1
    assert (await service.breaker.state()).state == "open"
