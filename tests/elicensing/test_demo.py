"""The demo hooks: a seeded simulator, local data pointing at it, and lines of what to try."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tether.core.bootstrap import Runtime
from tether.elicensing import demo
from tether.elicensing.service import build
from tether.elicensing.settings import ElicensingSettings
from tether.elicensing.simulator import ElicensingSimulatorServer

from .conftest import INVOICE_CALL, make_settings


async def test_demo_seeds_report_versions_whose_invoices_refresh(
    runtime: Runtime, tmp_path: Path
) -> None:
    server = demo.start_simulator()
    try:
        assert isinstance(server, ElicensingSimulatorServer)
        lines = await demo.seed(runtime, server)
        assert any("/compliance-report-versions/101/obligation" in line for line in lines)
        controls = [line for line in lines if server.control_url in line]
        assert any(f"{server.control_url}/faults" in line for line in controls)
        assert all(f"Bearer {server.control_token}'" in line for line in controls)
        demo_runtime = dataclasses.replace(
            runtime, overrides={ElicensingSettings: make_settings(server)}
        )
        async with build(demo_runtime) as service:
            read = await service.read_invoice(101)
        assert read.data_is_fresh and read.invoice.line_items
        assert server.state.calls[INVOICE_CALL] == 1
    finally:
        server.stop()
