"""The accounting point capability record: what it plugs into tether, each part imported when
first used (a worker imports the service and the jobs, never the API, CLI or pages)."""

from __future__ import annotations

from tether.accountingpoints.settings import AccountingPointSettings
from tether.core.capability import Capability, Job, Ref

CAPABILITY = Capability(
    name="accounting-points",
    package="tether.accountingpoints",
    settings=AccountingPointSettings,
    build=Ref("tether.accountingpoints.service:build"),
    router=Ref("tether.accountingpoints.api:router"),
    cli=Ref("tether.accountingpoints.cli:app"),
    simulators={"datahub": Ref("tether.accountingpoints.cli:simulate")},
    jobs=(
        Job(name="sync", run=Ref("tether.accountingpoints.tasks:sync_job")),
        Job(name="events", run=Ref("tether.accountingpoints.tasks:events_job")),
    ),
    demo=Ref("tether.accountingpoints.demo:demo"),
    panel=Ref("tether.accountingpoints.console:panel"),
)
