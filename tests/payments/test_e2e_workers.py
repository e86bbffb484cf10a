"""``tether worker`` processes against real NATS, PostgreSQL and the simulator: per-case
ordering across 4 processes, intake over the broker, and kill -9 between send and bookkeeping."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from tether.core.errors import NotFound
from tether.payments.client import OppdragClient
from tether.payments.service import PaymentsService
from tether.payments.settings import PaymentsSettings
from tether.payments.simulator import start_simulator

from .conftest import expected, june, message, topology_of, unique_settings


@dataclass
class Setup:
    own: PaymentsSettings
    sim: Any
    service: PaymentsService
    db_url: str
    nats_url: str
    log: Path

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
        env.update(DATABASE_URL=self.db_url, TETHER_NATS_URL=self.nats_url)
        env["TETHER_LOG_LEVEL"] = "WARNING"
        for name, value in self.own.model_dump().items():
            env[f"TETHER_PAYMENTS_{name.upper()}"] = str(value)
        return env

    @contextmanager
    def workers(self, processes: int) -> Iterator[subprocess.Popen[bytes]]:
        """``tether worker --only payments`` in its own process group; stopped (or killed)."""
        cmd = [sys.executable, "-m", "tether", "worker", "--only", "payments"]
        cmd += ["--processes", str(processes)]
        with self.log.open("ab") as out:
            proc = subprocess.Popen(
                cmd, env=self.env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


@pytest.fixture
async def setup(
    pool: AsyncConnectionPool[Any], db_url: str, nats_url: str, tmp_path: Path
) -> AsyncIterator[Setup]:
    own = unique_settings(send_dead_timeout_s=2.0, ack_wait_s=3.0)
    sim = start_simulator(
        nats_url, topology=topology_of(own), token=own.oppdrag_token.get_secret_value()
    )
    own = own.model_copy(update={"oppdrag_url": sim.url})
    try:
        async with OppdragClient.from_settings(own) as client:
            service = PaymentsService(pool=pool, settings=own, client=client)
            yield Setup(
                own=own,
                sim=sim,
                service=service,
                db_url=db_url,
                nats_url=nats_url,
                log=tmp_path / "worker.log",
            )
    finally:
        sim.stop()


async def _final(service: PaymentsService, keys: list[str], timeout_s: float = 60) -> list[str]:
    """Each key's final status; waits for keys the workers have not taken from the broker yet."""
    out = []
    for key in keys:
        for _ in range(int(timeout_s / 0.1)):
            try:
                row = await service.wait_status(key, timeout_s)
                break
            except NotFound:
                await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"{key} never arrived")
        out.append(row.status)
    return out


def _version(i: int) -> list[dict[str, Any]]:
    """The i-th message of one case: amounts, periods and stops change from one to the next."""
    days = june(3, 7, 100 + i)
    if i % 2 == 0:
        days += june(10, 14, 200 + i, periode="m2")
    if i % 3 == 0:
        days += june(17, 21, 300, periode="m3")
    return days


async def test_one_case_from_four_worker_processes_keeps_arrival_order(
    setup: Setup, js: Any
) -> None:
    from tether.core.events import ensure_stream

    n = 24
    bodies = {f"k{i:02d}": message(_version(i)) for i in range(1, n + 1)}
    with setup.workers(4):
        s = setup.own
        await ensure_stream(js, s.intake_stream, s.intake_subject)
        await asyncio.gather(
            *(
                js.publish(s.intake_subject, body, headers={"Transaction-ID": key})
                for key, body in bodies.items()
            )
        )
        statuses = await _final(setup.service, list(bodies))
    assert set(statuses) == {"OK"}, statuses
    async with setup.service.pool.connection() as conn:
        cur = await conn.execute("SELECT original_key FROM pay.inbound ORDER BY seq DESC LIMIT 1")
        row = await cur.fetchone()
    assert row is not None
    last = int(row["original_key"][1:])
    view = setup.sim.ledger.view("sak1")
    paid: dict[str, dict[str, int]] = {}
    for chain in view["chains"]:
        paid.setdefault(chain["klassekode"], {}).update(chain["days"])
    assert paid == expected(_version(last))
    assert setup.sim.state.calls["refused"] == 0
    orders = await setup.service.orders("sak1")
    assert {o.state for o in orders} == {"OK"}
    assert setup.sim.state.calls["orders"] == len(orders)


async def test_kill_9_between_send_and_bookkeeping_leaves_one_order(setup: Setup) -> None:
    await setup.service.submit("k1", message(june(3, 14)))
    blocker = psycopg.connect(setup.db_url)
    try:
        # the sender's bookkeeping writes a status: hold the table so it blocks right there
        blocker.execute("LOCK TABLE pay.status IN EXCLUSIVE MODE")
        with setup.workers(1) as proc:
            for _ in range(400):
                if setup.sim.state.calls["orders"] >= 1:
                    break
                await asyncio.sleep(0.05)
            assert setup.sim.state.calls["orders"] == 1  # published, not yet recorded
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        # The sender books a round as one pipelined BEGIN ... COMMIT: what reached its server
        # session before the kill would still commit once the lock is free (the booking is true:
        # the order was published). End those sessions first, so the bookkeeping is lost for sure
        # and the re-send path is what is tested (the session of a crashed host is gone too).
        blocker.execute(
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name LIKE 'tether worker%'"
        )
        blocker.rollback()
    finally:
        blocker.close()
    orders = await setup.service.orders("sak1")
    assert orders[0].state == "MOTTATT"  # the crash lost the bookkeeping
    with setup.workers(1):
        assert await _final(setup.service, ["k1"]) == ["OK"]
    calls = setup.sim.state.calls
    assert calls["orders"] == 1
    assert calls["duplicates"] == 0
    assert [o.state for o in await setup.service.orders("sak1")] == ["OK"]
