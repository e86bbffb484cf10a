"""The list of capabilities this build runs: the only module that imports all of them.

A new capability is one package plus one line in ``PACKAGES``: each package's ``capability.py``
holds its ``CAPABILITY`` record. Every generic entrypoint (web app, CLI, worker, demo) and the
migration runner iterate ``CAPABILITIES``.
"""

from __future__ import annotations

import logging
from importlib import import_module
from typing import TYPE_CHECKING

from tether.core.capability import Capability

if TYPE_CHECKING:
    from tether.core.migrations import Migration

PACKAGES: tuple[str, ...] = (
    "tether.accountingpoints",
    "tether.elicensing",
    "tether.payments",
    "tether.accruals",
)


def _load(package: str) -> Capability:
    record = import_module(f"{package}.capability").CAPABILITY
    if not isinstance(record, Capability) or record.package != package:
        raise TypeError(f"{package}.capability.CAPABILITY is not this package's Capability")
    return record


CAPABILITIES: tuple[Capability, ...] = tuple(_load(p) for p in PACKAGES)


def migration_components() -> tuple[str, ...]:
    """Migration components in the order they must run: core first, then each capability."""
    return ("tether.core", *(c.package for c in CAPABILITIES))


def upgrade_database(url: str, *, log_level: int = logging.INFO) -> list[Migration]:
    """Everything ``tether db upgrade`` does as the owner: our migrations, then the durable
    workflow library's schema (so a data-only role never needs DDL)."""
    from tether.core import migrations, workflows  # here: a worker needs neither

    applied = migrations.upgrade(url, migration_components(), log_level=log_level)

    workflows.migrate(url)
    return applied
