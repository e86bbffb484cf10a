"""The accruals capability record: what it plugs into tether, each part imported when first
used (numpy and the workflow library only where a run needs them)."""

from __future__ import annotations

from tether.accruals.settings import AccrualsSettings
from tether.core.capability import Capability, Job, Ref

CAPABILITY = Capability(
    name="accruals",
    package="tether.accruals",
    settings=AccrualsSettings,
    build=Ref("tether.accruals.service:build"),
    router=Ref("tether.accruals.api:router"),
    cli=Ref("tether.accruals.cli:app"),
    jobs=(Job(name="executor", run=Ref("tether.accruals.tasks:executor_job")),),
    demo=Ref("tether.accruals.demo:demo"),
    panel=Ref("tether.accruals.console:panel"),
)
