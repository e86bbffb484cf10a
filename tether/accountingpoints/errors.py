"""Errors of the accounting point capability.

TetherError
 ├── InvalidInput
 │    └── InvalidGsrn                     a caller sent a malformed GSRN
 ├── NotFound
 │    └── AccountingPointNotFound         neither we nor the datahub know this AP / CU
 ├── Forbidden
 │    └── EndUserMismatch                 lookup by someone who is not the current end user
 └── UpstreamInvalidPayload
      └── InvalidAccountingPointData      the adapter's answer breaks a rule we enforce
"""

from __future__ import annotations

from tether.core.errors import Forbidden, InvalidInput, NotFound, UpstreamInvalidPayload


class InvalidGsrn(InvalidInput):
    """The GSRN must be 18 digits, first non-zero, with a valid GS1 check digit."""


class AccountingPointNotFound(NotFound):
    """No such accounting point or controllable unit."""


class EndUserMismatch(Forbidden):
    """The end user is not the current end user of this accounting point."""


class InvalidAccountingPointData(UpstreamInvalidPayload):
    """The adapter's answer breaks a rule tether enforces before storing it."""

    reason = "invalid_accounting_point_data"
