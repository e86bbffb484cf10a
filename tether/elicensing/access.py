"""What every e-licensing route depends on: its credential, and the capability's service.

Each route lists ``dependencies=READ`` or ``dependencies=WRITE``. The security work wires them by
setting ``READ = [Depends(require("read"))]`` and ``WRITE = [Depends(require("write"))]`` here;
no route needs to change.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, params

from tether.elicensing.service import ElicensingService

READ: list[params.Depends] = []  #: reads: invoices, summaries, the page, obligation links
WRITE: list[params.Depends] = []  #: writes: applying compliance units, registering, unlinking


def service_of(request: Request) -> ElicensingService:
    """The capability's service, built once for the app (``app.state.elicensing``)."""
    service: ElicensingService = request.app.state.elicensing
    return service


Service = Annotated[ElicensingService, Depends(service_of)]
