"""The accruals capability record: what it plugs into tether."""

from __future__ import annotations

from tether.accruals import api, cli, console, demo, service, tasks
from tether.accruals.settings import AccrualsSettings
from tether.core.capability import Capability, Job

CAPABILITY = Capability(
    name="accruals",
    package="tether.accruals",
    settings=AccrualsSettings,
    build=service.build,
    router=api.router,
    cli=cli.app,
    jobs=(Job(name="executor", run=tasks.executor_job),),
    demo=demo.demo,
    panel=console.panel,
)
