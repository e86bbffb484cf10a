"""OIDC bearer tokens: signed by a key pair the test makes, JWKS served over a real local HTTP
server; issuer, audience, expiry, signature and scopes are each checked."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tether.core.settings import Settings

ISSUER = "https://idp.test/realms/tether"
AUDIENCE = "tether-api"
AP = "/api/v1/accounting-points/707057500000000001"
UNITS = "/api/v1/controllable-units"


def _private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return _private_key()


@pytest.fixture(scope="module")
def jwks_url(signing_key: rsa.RSAPrivateKey) -> Iterator[str]:
    jwk = json.loads(RSAAlgorithm.to_jwk(signing_key.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/certs"
    server.shutdown()
    server.server_close()


def token(key: rsa.RSAPrivateKey, **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300}
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": "k1"})


@pytest.fixture
def anonymous(settings: Settings, jwks_url: str, start_api: Any) -> Iterator[httpx.Client]:
    configured = settings.model_copy(
        update={
            "oidc_issuer": ISSUER,
            "oidc_audience": AUDIENCE,
            "oidc_jwks_url": jwks_url,
            "oidc_scope_claim": "scp",
        }
    )
    api: httpx.Client = start_api(configured)
    with httpx.Client(base_url=api.base_url, timeout=10) as client:
        yield client


def status(client: httpx.Client, jwt_token: str, path: str = AP) -> int:
    return client.get(path, headers={"Authorization": f"Bearer {jwt_token}"}).status_code


def test_a_valid_token_gets_exactly_its_scopes(
    anonymous: httpx.Client, signing_key: rsa.RSAPrivateKey
) -> None:
    reader = token(signing_key, scp=["read", "unknown-scope"])
    assert status(anonymous, reader) == 404  # authenticated; no such accounting point
    posted = anonymous.post(
        UNITS,
        json={"name": "x", "accounting_point": "1"},
        headers={"Authorization": f"Bearer {reader}"},
    )
    assert posted.status_code == 403
    admin = token(signing_key, scp="admin")  # a space-separated string works too
    assert status(anonymous, admin, "/metrics") == 200


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": int(time.time()) - 60},
        {"aud": "someone-else"},
        {"iss": "https://evil.test/"},
        {"sub": None},
        {"exp": None},
    ],
    ids=["expired", "wrong audience", "wrong issuer", "no subject", "no expiry"],
)
def test_invalid_tokens_are_refused(
    anonymous: httpx.Client, signing_key: rsa.RSAPrivateKey, claims: dict[str, Any]
) -> None:
    assert status(anonymous, token(signing_key, scp=["admin"], **claims)) == 401


def test_a_token_signed_by_another_key_is_refused(anonymous: httpx.Client) -> None:
    forged = token(_private_key(), scp=["admin"])  # same kid, wrong key
    assert status(anonymous, forged) == 401
    unsigned = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "a", "exp": 2**31}, key=None, algorithm="none"
    )
    assert status(anonymous, unsigned) == 401
