"""The error answers every route may give, declared in the OpenAPI document.

Every error body is ``ErrorOut`` (``core/api.py`` writes it for ``TetherError``s and request
validation alike), so clients and the docs see one shape for 401/403/404/422/503. ``document``
walks the app's routes once, after every router is included; responses a route already declares
(for example the security dependency's 401/403) are kept.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.utils import create_model_field
from pydantic import BaseModel, Field

from tether.core.web import error_page, wants_html


class ErrorOut(BaseModel):
    """The body of every error answer."""

    error: str = Field(description="Kind of error, e.g. NotFound, UpstreamUnavailable.")
    detail: str = Field(description="What went wrong, in words.")
    reason: str | None = Field(
        default=None, description="Machine-readable cause for upstream errors (circuit_open...)."
    )
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="For 422: each invalid field (location, message)."
    )


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No credential, or an invalid one."},
    403: {"model": ErrorOut, "description": "The credential lacks the scope this route needs."},
    404: {"model": ErrorOut, "description": "No such object."},
    422: {"model": ErrorOut, "description": "The request is malformed."},
    503: {
        "model": ErrorOut,
        "description": "A source system is unavailable (or its circuit is open) and there is "
        "no local copy to answer from.",
    },
}


def _first(errors: list[dict[str, Any]]) -> str:
    if not errors:
        return "invalid request"
    where = ".".join(str(part) for part in errors[0].get("loc", ()))
    return f"{where}: {errors[0].get('msg', 'invalid')}"


async def _validation_error(request: Request, exc: Exception) -> Any:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
        for e in exc.errors()
    ]
    if wants_html(request):
        return error_page(422, _first(errors))
    body = ErrorOut(error="InvalidInput", detail=_first(errors), errors=errors)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=422)


def document(app: FastAPI) -> None:
    """Declare the error answers on every documented route; 422s get the ``ErrorOut`` body."""
    for route in app.routes:
        if isinstance(route, APIRoute) and route.include_in_schema:
            for code, response in ERROR_RESPONSES.items():
                if code in route.responses:
                    continue
                route.responses[code] = response
                route.response_fields[code] = create_model_field(
                    name=f"Response_{code}_{route.unique_id}", type_=ErrorOut, mode="serialization"
                )
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.openapi_schema = None  # rebuilt with the responses on first request
