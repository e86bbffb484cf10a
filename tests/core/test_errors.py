"""One mapping from the exception tree to HTTP statuses; bugs stay 500s."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from tether.core import errors
from tether.core.api import install_error_handlers


def _all_subclasses(cls: type[errors.TetherError]) -> list[type[errors.TetherError]]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_all_subclasses(sub)]
    return found


EXPECTED = {
    errors.ConfigurationError: 500,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.DataRejected: 409,
    errors.Busy: 409,
    errors.Forbidden: 403,
    errors.InvalidInput: 422,
    errors.UpstreamError: 502,
    errors.UpstreamNotFound: 404,
    errors.UpstreamRejected: 502,
    errors.UpstreamUnavailable: 503,
    errors.UpstreamInvalidPayload: 502,
}


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/raise/{name}")
    async def raise_(name: str) -> None:
        if name == "bug":
            raise KeyError("a bug")
        cls = next(c for c in _all_subclasses(errors.TetherError) if c.__name__ == name)
        raise cls("what went wrong")

    return app


# the tree's own classes: which capability errors exist depends on what this test process has
# imported (xdist), and theirs take their own arguments (``KeyReused(key)``, ``NotUtf8(...)``)
CORE = [c for c in _all_subclasses(errors.TetherError) if c.__module__ == errors.__name__]


@pytest.mark.parametrize("cls", CORE, ids=lambda c: c.__name__)
async def test_every_error_maps_to_its_status_with_its_message(
    cls: type[errors.TetherError],
) -> None:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get(f"/raise/{cls.__name__}")
    assert response.status_code == cls.status_code
    if cls in EXPECTED:
        assert response.status_code == EXPECTED[cls]
    assert response.json()["detail"] == "what went wrong"
    assert response.json()["error"] == cls.__name__


async def test_a_bug_is_a_500_and_never_an_upstream_error() -> None:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/raise/bug")
    assert response.status_code == 500
    assert "upstream" not in response.text.lower()


def test_default_message_is_the_docstring() -> None:
    assert errors.UpstreamUnavailable().message == "The external system is down, slow or failing."
