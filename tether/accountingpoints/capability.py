"""The accounting point capability record: what it plugs into tether."""

from __future__ import annotations

from tether.accountingpoints import api, cli, console, demo, service, tasks
from tether.accountingpoints.settings import AccountingPointSettings
from tether.core.capability import Capability, Job

CAPABILITY = Capability(
    name="accounting-points",
    package="tether.accountingpoints",
    settings=AccountingPointSettings,
    build=service.build,
    router=api.router,
    cli=cli.app,
    simulators={"datahub": cli.simulate},
    jobs=(Job(name="sync", run=tasks.sync_job), Job(name="events", run=tasks.events_job)),
    demo=demo.demo,
    panel=console.panel,
)
