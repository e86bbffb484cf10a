"""Demo hooks: a seeded simulator, and local data pointing at its invoices."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pydantic import SecretStr

from tether.core import db
from tether.core.bootstrap import Runtime
from tether.core.capability import DemoContext, DemoPart
from tether.core.simulator import SimulatorServer
from tether.elicensing import repository
from tether.elicensing.settings import ElicensingSettings
from tether.elicensing.simulator import ElicensingSimulatorServer, make_simulator

FIRST_REPORT_VERSION = 101
CIRCUIT_OPEN_S = 5.0


def start_simulator(
    port: int = 0, control_port: int = 0, token: str = "dev-elicensing-token"
) -> SimulatorServer:
    """A seeded e-licensing simulator, serving on a background thread."""
    return make_simulator(port=port, control_port=control_port, token=token).start_in_thread()


@asynccontextmanager
async def demo(ctx: DemoContext) -> AsyncIterator[DemoPart]:
    """The e-licensing share of ``tether demo``: a seeded simulator and report versions."""
    token = secrets.token_urlsafe(24)  # a fresh token per demo, never the dev value
    server = start_simulator(
        port=ctx.port(7002, "the e-licensing simulator"),
        control_port=ctx.port(7102, "the e-licensing simulator's control API"),
        token=token,
    )

    async def seed_demo(runtime: Runtime, service: object) -> list[str]:
        return [f"E-licensing sim {server.url}", *await seed(runtime, server, api=ctx.api_url)]

    try:
        # a short freshness window, so reloading the obligation page shows the alert within
        # seconds, and a short open circuit, so the page recovers seconds after e-licensing does
        yield DemoPart(
            settings={
                "url": server.url,
                "token": SecretStr(token),
                "freshness_s": 5.0,
                "breaker_open_s": CIRCUIT_OPEN_S,
            },
            seed=seed_demo,
        )
    finally:
        server.stop()


async def seed(runtime: Runtime, simulator: SimulatorServer, *, api: str = "") -> list[str]:
    """Operators, client links and report versions for every simulator invoice; what to try."""
    if not isinstance(simulator, ElicensingSimulatorServer):
        raise TypeError("seed() needs the simulator that start_simulator() returned")
    versions = await seed_ledger(runtime, simulator)
    first = versions[0]
    number = sorted(simulator.ledger.invoices)[0]  # the invoice of report version `first`
    control = simulator.control_url
    auth = f"-H 'authorization: Bearer {simulator.control_token}'"
    page = f"{api}/compliance-report-versions/{first}/obligation"
    failures = runtime.settings_of(ElicensingSettings).breaker_failure_threshold
    faults = f"curl -X PUT {control}/faults {auth} -H 'content-type: application/json' -d "
    return [
        f"E-licensing: obligation page {page}  (report versions {versions[0]}..{versions[-1]})",
        f"  JSON: curl {api}/api/v1/compliance-report-versions/{first}/obligation-summary",
        "  take e-licensing down:",
        f'    {faults}\'{{"mode":"down"}}\'',
        f"    open {page}?force=true : the stale-data alert appears; after {failures} such "
        "reads in a row (each a failed refresh) the console shows the circuit open",
        "  bring it back:",
        f'    {faults}\'{{"mode":"none"}}\'',
        f"    the circuit stays open {CIRCUIT_OPEN_S:.0f} s after the last failure, then the next "
        f"read probes it: open {page}?force=true after that and the alert is gone (the "
        "console shows the circuit closed)",
        "  a payment arrives:",
        f"    curl -X POST {control}/ledger/invoices/{number}/payments {auth} -H 'content-type: "
        'application/json\' -d \'{"amount":"1000.00"}\'',
        f"    open {page}?force=true : the payment is listed",
    ]


async def seed_ledger(runtime: Runtime, simulator: ElicensingSimulatorServer) -> list[int]:
    """One operator, client link, report version and obligation per simulator invoice."""
    ledger = simulator.ledger
    versions = []
    async with db.transaction(runtime.pool) as conn:
        for i, (number, inv) in enumerate(sorted(ledger.invoices.items())):
            client = ledger.clients[inv.client_object_id]
            operator_id = await repository.insert_operator(
                conn, legal_name=client.company_name, cra_business_number=f"{123456780 + i:09d}"
            )
            link = await repository.insert_client_operator(
                conn,
                operator_id=operator_id,
                client_object_id=client.object_id,
                client_guid=client.guid,
            )
            version = FIRST_REPORT_VERSION + i
            await repository.insert_report_version(
                conn, id=version, operator_id=operator_id, reporting_year=2024
            )
            fee = ledger.fees[inv.fee_ids[0]]
            await repository.insert_obligation(
                conn,
                report_version_id=version,
                obligation_id=f"24-{operator_id:04d}-1-1",
                fee_amount=fee.base_amount,
                client_operator_id=link,
                invoice_number=number,
            )
            versions.append(version)
    return versions


__all__ = ["demo", "seed", "seed_ledger", "start_simulator"]
