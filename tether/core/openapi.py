"""The error answers every route may give, declared in the OpenAPI document.

Every error body is ``ErrorOut`` (``core/api.py`` writes it for ``TetherError``s and request
validation alike), so clients and the docs see one shape for 401/403/404/422/503. ``document``
completes the generated document: responses a route already declares (for example the security
dependency's 401/403) are kept.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
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


ERROR_RESPONSES: dict[int, str] = {
    401: "No credential, or an invalid one.",
    403: "The credential lacks the scope this route needs.",
    404: "No such object.",
    422: "The request is malformed.",
    503: "A source system is unavailable (or its circuit is open) and there is no local copy "
    "to answer from.",
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


def add_error_responses(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with the error answers on every operation (ones it declares are kept)."""
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("ErrorOut", ErrorOut.model_json_schema())
    ref = {"$ref": "#/components/schemas/ErrorOut"}
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            for code, description in ERROR_RESPONSES.items():
                responses.setdefault(
                    str(code),
                    {"description": description, "content": {"application/json": {"schema": ref}}},
                )
            if "HTTPValidationError" in str(responses.get("422")):  # FastAPI's default: not ours
                responses["422"] = {
                    "description": ERROR_RESPONSES[422],
                    "content": {"application/json": {"schema": ref}},
                }
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    return schema


def document(app: FastAPI) -> None:
    """Declare the error answers on every documented route; 422s get the ``ErrorOut`` body.

    The generated document is completed after FastAPI builds it (FastAPI resolves included
    routers lazily, so the routes are not walked here)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        return add_error_responses(generate())

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_exception_handler(RequestValidationError, _validation_error)
