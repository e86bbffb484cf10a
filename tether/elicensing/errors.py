"""Errors of the e-licensing capability.

TetherError
 ├── NotFound
 │    └── InvoiceNotFound           a report version without (that type of) invoice
 ├── Conflict
 │    └── ElicensingDataStale        a balance-dependent write refused on stale data (HTTP 400)
 └── UpstreamError
      ├── UpstreamUnavailable
      │    └── RefreshBusy           no refresh slot in time and no local copy to answer with
      └── UpstreamInvalidPayload
           └── InvalidElicensingPayload   e-licensing's data breaks its contract or our columns
"""

from __future__ import annotations

from tether.core.errors import Conflict, NotFound, UpstreamInvalidPayload, UpstreamUnavailable

STALE_MESSAGE = "Unable to proceed: E-Licensing data is not up to date. Please try again later."


class InvoiceNotFound(NotFound):
    """This compliance report version has no invoice of that type."""


class ElicensingDataStale(Conflict):
    """Unable to proceed: E-Licensing data is not up to date. Please try again later."""

    status_code = 400


class InvalidElicensingPayload(UpstreamInvalidPayload):
    """E-licensing answered with data that breaks its contract."""


class RefreshBusy(UpstreamUnavailable):
    """Too many refreshes at once, and this invoice was never retrieved: try again shortly."""

    reason = "busy"
