"""The capability's service as a route dependency; each route's credential is one of
``tether.core.auth``'s ``READ``, ``WRITE`` or ``PAGE`` lists."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tether.elicensing.service import ElicensingService


def service_of(request: Request) -> ElicensingService:
    """The capability's service, built once for the app (``app.state.elicensing``)."""
    service: ElicensingService = request.app.state.elicensing
    return service


Service = Annotated[ElicensingService, Depends(service_of)]
