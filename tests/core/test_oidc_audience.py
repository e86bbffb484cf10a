"""OIDC always checks the audience: turning it on without one is refused at start, so a token
the issuer gave another app (``aud=payroll-app``) never passes as one for tether."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from psycopg_pool import AsyncConnectionPool

from tests.core.test_oidc import AP, AUDIENCE, ISSUER, jwks_url, signing_key, status, token
from tether.core.auth import Authenticator
from tether.core.errors import ConfigurationError
from tether.core.settings import Settings, load_settings

__all__ = ["jwks_url", "signing_key"]  # the module fixtures, shared


def no_pool() -> AsyncConnectionPool[Any]:
    raise AssertionError("building the authenticator opens no connection")


def test_oidc_without_an_audience_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    jwks = "http://127.0.0.1:9/certs"
    on = {"oidc_issuer": ISSUER, "oidc_jwks_url": jwks}
    with pytest.raises(ConfigurationError, match="set it") as raised:
        Settings(oidc_issuer=ISSUER, oidc_jwks_url=jwks)
    assert "TETHER_OIDC_AUDIENCE" in str(raised.value) and "\n" not in str(raised.value)
    copied = Settings().model_copy(update=on)  # skips validators: the authenticator checks too
    with pytest.raises(ConfigurationError, match="TETHER_OIDC_AUDIENCE"):
        Authenticator(copied, no_pool)
    Authenticator(Settings(oidc_issuer=ISSUER, oidc_jwks_url=jwks, oidc_audience=AUDIENCE), no_pool)
    monkeypatch.setenv("TETHER_OIDC_ISSUER", ISSUER)
    monkeypatch.setenv("TETHER_OIDC_JWKS_URL", "http://127.0.0.1:9/certs")
    with pytest.raises(ConfigurationError, match="TETHER_OIDC_AUDIENCE"):
        load_settings()  # what serve and worker read at start


def test_half_an_oidc_configuration_is_an_error_not_silently_off() -> None:
    for half in ({"oidc_issuer": ISSUER}, {"oidc_jwks_url": "http://127.0.0.1:9/certs"}):
        with pytest.raises(ConfigurationError, match="needs both"):
            Settings(oidc_audience=AUDIENCE, **half)  # type: ignore[arg-type]
    Settings()  # none of it: OIDC off, as before


@pytest.fixture
def anonymous(settings: Settings, jwks_url: str, start_api: Any) -> Iterator[httpx.Client]:
    configured = settings.model_copy(
        update={"oidc_issuer": ISSUER, "oidc_audience": AUDIENCE, "oidc_jwks_url": jwks_url}
    )
    api: httpx.Client = start_api(configured)
    with httpx.Client(base_url=api.base_url, timeout=10) as client:
        yield client


def test_tokens_for_another_audience_or_none_are_refused(
    anonymous: httpx.Client, signing_key: rsa.RSAPrivateKey
) -> None:
    assert status(anonymous, token(signing_key, scope="admin"), AP) == 404  # tether's: accepted
    assert status(anonymous, token(signing_key, scope="admin", aud="payroll-app"), AP) == 401
    both = token(signing_key, scope="admin", aud=["payroll-app", "other"])
    assert status(anonymous, both, AP) == 401
    assert status(anonymous, token(signing_key, scope="admin", aud=None), AP) == 401


def test_serve_without_an_audience_stops_with_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tether", "serve"],
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "TETHER_DATA_DIR": "/nonexistent/never-used",
            "TETHER_OIDC_ISSUER": ISSUER,
            "TETHER_OIDC_JWKS_URL": "http://127.0.0.1:9/certs",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr  # a bad setting: 2
    assert "TETHER_OIDC_AUDIENCE" in result.stderr
