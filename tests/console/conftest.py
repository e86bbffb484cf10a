"""The whole app (create_app) on a real socket with both simulators, and state arranged in the
database that every console panel has something to say about."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from conftest import ApiServer  # tests/conftest.py: the app on a real socket

from tether.accountingpoints.settings import AccountingPointSettings
from tether.accountingpoints.simulator import Datahub, start_simulator
from tether.core import keys
from tether.core.bootstrap import Runtime
from tether.core.console import PanelCache
from tether.core.settings import Settings
from tether.core.simulator import SimulatorServer
from tether.elicensing.demo import seed_ledger
from tether.elicensing.settings import ElicensingSettings
from tether.elicensing.simulator import ElicensingSimulatorServer, make_simulator

ADAPTER_TOKEN = "console-adapter-token"


@dataclass
class Site:
    url: str
    client: httpx.Client
    datahub: Datahub
    datahub_server: SimulatorServer
    elicensing: ElicensingSimulatorServer
    failing: dict[str, list[str]]  # reason -> GSRNs
    synced: list[str]
    never: list[str]
    stale_invoice: str
    db_url: str
    versions: list[int]
    key: str  # an API key with scope read (the client itself sends an admin key)


def arrange(db_url: str, gsrns: list[str], invoices: list[str]) -> tuple[dict[str, list[str]], str]:
    """APs with units: 2 synced, 2 failing (two reasons), the rest never synced; one report
    version per invoice, the first invoice copied once and then failing (stale)."""
    failing = {"upstream_unavailable": [gsrns[2]], "invalid_accounting_point_data": [gsrns[3]]}
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO ap.accounting_point (gsrn) SELECT unnest(%s::text[])", [gsrns])
        conn.execute(
            "INSERT INTO ap.controllable_unit (name, accounting_point_id, start_date) "
            "SELECT 'cu ' || a.gsrn, a.id, '2000-01-01' FROM ap.accounting_point a"
        )
        conn.execute(
            "UPDATE ap.accounting_point_sync s SET last_synced_at = now() - interval '2 hours', "
            "next_sync_at = now() + interval '1 hour' FROM ap.accounting_point a "
            "WHERE a.id = s.accounting_point_id AND a.gsrn = ANY(%s)",
            [gsrns[:4]],
        )
        for reason, failed in failing.items():
            conn.execute(
                "UPDATE ap.accounting_point_sync s SET last_error = 'it failed', "
                "last_error_reason = %s, last_error_at = now(), "
                "next_sync_at = now() - interval '10 minutes' FROM ap.accounting_point a "
                "WHERE a.id = s.accounting_point_id AND a.gsrn = ANY(%s)",
                [reason, failed],
            )
        # payments: one order at the payment system for 3 minutes without a receipt
        conn.execute(
            "INSERT INTO pay.oppdrag (id, fagsystem, sak_id, original_key, xml, sha256, uids,"
            " details, state, message_id, created_at, sent_at) VALUES (gen_random_uuid(),"
            " 'DAGPENGER', 'sak-7', 'key-7', '<oppdrag/>', 'x', '{}', '{}', 'HOS_OPPDRAG', 'm-7',"
            " now() - interval '3 minutes', now() - interval '3 minutes')"
        )
        # accruals: a run halfway, one account failed
        conn.execute(
            "INSERT INTO acc.run (period_end, as_at, workflow_id, status, chunks)"
            " VALUES ('2026-10-31', now(), 'accruals-run-2026-10-31', 'running', 2)"
        )
        conn.execute(
            "INSERT INTO acc.run_chunk (period_end, chunk, status, accounts) VALUES"
            " ('2026-10-31', 0, 'done', 10), ('2026-10-31', 1, 'queued', 10)"
        )
        conn.execute(
            "INSERT INTO acc.run_failure (period_end, account_id, step, reason)"
            " VALUES ('2026-10-31', 'A1', 'price', 'no tariff')"
        )
    return failing, invoices[0]


@pytest.fixture
async def site(db_url: str, tmp_path: Path, pool: Any) -> AsyncIterator[Site]:
    ap_server: SimulatorServer
    ap_server, datahub = start_simulator(count=8, seed=5, token=ADAPTER_TOKEN)
    el_sim = make_simulator(clients=2, seed=7)
    el_sim.start_in_thread()
    gsrns = datahub.gsrns[:6]
    failing, stale_invoice = arrange(db_url, gsrns, sorted(el_sim.ledger.invoices))
    settings = Settings(database_url=db_url, data_dir=tmp_path / "data", db_pool_max=4)  # type: ignore[call-arg]
    overrides = [
        AccountingPointSettings(
            adapter_url=ap_server.url, adapter_token=ADAPTER_TOKEN, adapter_retries=0
        ),
        ElicensingSettings(
            url=el_sim.url,
            connect_timeout_s=5.0,  # a loaded CI box may stall a loopback connect
            read_timeout_s=1.5,
            breaker_failure_threshold=1,
            breaker_open_s=600,
        ),
    ]
    versions = await seed_ledger(Runtime(settings=settings, database_url=db_url, pool=pool), el_sim)
    _, key = keys.create(db_url, "console test reader", ["read"])
    _, admin = keys.create(db_url, "console test admin", ["admin"])
    auth = {"Authorization": f"Bearer {admin}"}
    api = ApiServer(settings, db_url, overrides)
    api.server.config.app.state.panel_cache = PanelCache(max_age_s=0)  # every read is fresh
    api.start()
    try:
        async with httpx.AsyncClient(base_url=api.url, timeout=15, headers=auth) as arrange_client:
            first = f"/api/v1/compliance-report-versions/{versions[0]}/invoice"
            assert (await arrange_client.get(first)).status_code == 200  # copied once
            el_sim.set_mode("down")
            stale = await arrange_client.get(first, params={"force": "true"})
            assert stale.json()["data_is_fresh"] is False
        with httpx.Client(base_url=api.url, timeout=15, headers=auth) as client:
            yield Site(
                url=api.url,
                client=client,
                datahub=datahub,
                datahub_server=ap_server,
                elicensing=el_sim,
                failing=failing,
                synced=gsrns[:2],
                never=gsrns[4:],
                stale_invoice=stale_invoice,
                db_url=db_url,
                versions=versions,
                key=key,
            )
    finally:
        api.stop()
        el_sim.stop()
        ap_server.stop()
