"""The list of capabilities this build runs. The only module that imports all of them."""

from __future__ import annotations

from tether.accountingpoints import api as ap_api
from tether.accountingpoints import service as ap_service
from tether.core.api import Capability
from tether.elicensing import api as elicensing_api
from tether.elicensing import service as elicensing_service

CAPABILITIES: list[Capability] = [
    Capability(name="accountingpoints", router=ap_api.router, build=ap_service.build),
    Capability(name="elicensing", router=elicensing_api.router, build=elicensing_service.build),
]
