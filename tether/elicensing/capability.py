"""The e-licensing capability record: what it plugs into tether, each part imported when first
used."""

from __future__ import annotations

from tether.core.capability import Capability, Ref
from tether.elicensing.settings import ElicensingSettings

CAPABILITY = Capability(
    name="elicensing",
    package="tether.elicensing",
    settings=ElicensingSettings,
    build=Ref("tether.elicensing.service:build"),
    router=Ref("tether.elicensing.api:router"),
    cli=Ref("tether.elicensing.cli:app"),
    simulators={"elicensing": Ref("tether.elicensing.cli:simulate")},
    demo=Ref("tether.elicensing.demo:demo"),
    panel=Ref("tether.elicensing.console:panel"),
)
