"""What every e-licensing route depends on: its credential, and the capability's service.

Each route lists ``dependencies=READ`` or ``dependencies=WRITE`` (``PAGE`` for HTML pages, which
also accept the session cookie of the login form).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, params

from tether.core.auth import require
from tether.elicensing.service import ElicensingService

READ: list[params.Depends] = [require("read")]  #: reads: invoices, summaries, obligation links
PAGE: list[params.Depends] = [require("read", cookie=True)]  #: the HTML pages
WRITE: list[params.Depends] = [require("write")]  #: applying compliance units, linking, unlinking


def service_of(request: Request) -> ElicensingService:
    """The capability's service, built once for the app (``app.state.elicensing``)."""
    service: ElicensingService = request.app.state.elicensing
    return service


Service = Annotated[ElicensingService, Depends(service_of)]
