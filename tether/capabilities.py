"""The list of capabilities this build runs. The only module that imports all of them."""

from __future__ import annotations

from tether.core.api import Capability

CAPABILITIES: list[Capability] = []
