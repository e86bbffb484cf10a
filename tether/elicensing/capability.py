"""The e-licensing capability record: what it plugs into tether."""

from __future__ import annotations

from tether.core.capability import Capability
from tether.elicensing import api, cli, console, demo, service
from tether.elicensing.settings import ElicensingSettings

CAPABILITY = Capability(
    name="elicensing",
    package="tether.elicensing",
    settings=ElicensingSettings,
    build=service.build,
    router=api.router,
    cli=cli.app,
    simulators={"elicensing": cli.simulate},
    demo=demo.demo,
    panel=console.panel,
)
