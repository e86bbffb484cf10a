"""The list of capabilities this build runs: the only module that imports all of them.

A new capability is one package plus one line here. Every generic entrypoint (web app, CLI,
worker, demo) and the migration runner iterate this list.
"""

from __future__ import annotations

from tether.accountingpoints.capability import CAPABILITY as ACCOUNTING_POINTS
from tether.core.capability import Capability
from tether.elicensing.capability import CAPABILITY as ELICENSING
from tether.payments.capability import CAPABILITY as PAYMENTS

CAPABILITIES: tuple[Capability, ...] = (
    ACCOUNTING_POINTS,
    ELICENSING,
    PAYMENTS,
)


def migration_components() -> tuple[str, ...]:
    """Migration components in the order they must run: core first, then each capability."""
    return ("tether.core", *(c.package for c in CAPABILITIES))


def by_name(name: str) -> Capability:
    """One capability by its name; a clear error naming the known ones otherwise."""
    for capability in CAPABILITIES:
        if capability.name == name:
            return capability
    known = ", ".join(c.name for c in CAPABILITIES)
    raise KeyError(f"no capability named {name!r} (known: {known})")
