"""Who is calling: one dependency, ``require(scope)``, on every route.

Credentials, all sent as ``Authorization: Bearer <token>`` (scheme case-insensitive):
API keys (``tth_...``, see ``keys``), OIDC JWTs from the configured issuer, and the legacy events
token (scope ``events`` only). HTML pages also take a signed session cookie set by ``/login``,
naming a server-side session (``sessions``) that ``/logout`` revokes.
A credential resting on a weak secret (the events token, or a cookie signed with the session
secret, while unset, short or ``dev-``) works only for loopback clients: no development secret
works off this machine, even behind a same-host proxy that forwards the client's address.
Scopes: ``read``, ``write`` (anything that changes data or moves money), ``events``, ``admin``
(implies every other scope).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request, params
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import AsyncConnectionPool

from tether.core import exposure, keys, sessions
from tether.core.errors import Forbidden, LoginRequired, Unauthorized, UpstreamUnavailable
from tether.core.settings import Settings

COOKIE = "tether_session"
bearer = HTTPBearer(
    auto_error=False,
    description="An API key (`tether keys create`), an OIDC access token of the configured "
    "issuer, or (POST /api/v1/events only) TETHER_EVENTS_TOKEN. Scopes: read, write, events, "
    "admin (admin implies all).",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


@dataclass(frozen=True, kw_only=True)
class Principal:
    """An authenticated caller."""

    subject: str
    kind: str  # "api_key", "oidc", "events_token" or "session"
    scopes: frozenset[str]
    key_id: str | None = None
    expires_at: float | None = None
    secret: str | None = None  # the settings field (a static secret) this credential rests on

    def allows(self, scope: str) -> bool:
        return keys.grants(self.scopes, scope)


class Authenticator:
    """Checks bearer tokens and session cookies against the settings and the key table."""

    def __init__(self, settings: Settings, pool: Callable[[], AsyncConnectionPool[Any]]) -> None:
        self.settings = settings
        self._pool = pool
        secret = settings.session_secret
        self._session_key = (
            secret.get_secret_value().encode() if secret else secrets.token_bytes(32)
        )
        # verified API keys of this process; serves only once ``start`` got its listener going
        self.keys = keys.KeyCache(settings.api_key_cache_s, pool)
        self.weak = frozenset(exposure.weak_fields(settings))
        self._jwks: jwt.PyJWKClient | None = None
        settings.check_oidc()  # again: ``model_copy`` skips the validators
        if settings.oidc_issuer and settings.oidc_jwks_url:
            self._jwks = jwt.PyJWKClient(settings.oidc_jwks_url, lifespan=300, timeout=5)

    def start(self) -> None:
        """Start the key cache's listener (in the app's lifespan, its loop running)."""
        self.keys.start()

    async def close(self) -> None:
        await self.keys.close()

    async def from_bearer(self, token: str) -> Principal | None:
        """The caller a bearer token names, or ``None`` when it is not valid."""
        found = self.keys.known(token)  # a cached key: no parse (it parsed when stored)
        if found is None and keys.parse(token) is not None:
            found = await keys.verify(self._pool(), token, self.keys)
            if found is None:
                return None
        if found is not None:
            key_id, scopes = found
            return Principal(subject=f"key:{key_id}", kind="api_key", scopes=scopes, key_id=key_id)
        events = self.settings.events_token.get_secret_value().encode()
        if hmac.compare_digest(token.encode("utf-8", "replace"), events):
            return Principal(
                subject="events-token",
                kind="events_token",
                scopes=frozenset({"events"}),
                secret="events_token",
            )
        if self._jwks is not None and token.count(".") == 2:
            return await asyncio.to_thread(self._from_jwt, token)
        return None

    def _from_jwt(self, token: str) -> Principal | None:
        assert self._jwks is not None
        try:
            key = self._jwks.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                key.key,
                algorithms=["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"],
                audience=self.settings.oidc_audience,
                issuer=self.settings.oidc_issuer,
                options={"require": ["exp", "iss", "sub", "aud"], "verify_aud": True},
            )
        except jwt.PyJWKClientConnectionError as exc:
            raise UpstreamUnavailable("the identity provider's keys cannot be fetched") from exc
        except (jwt.PyJWTError, ValueError):
            return None
        raw = claims.get(self.settings.oidc_scope_claim, [])
        given = raw.split() if isinstance(raw, str) else [str(s) for s in raw or []]
        return Principal(
            subject=f"oidc:{claims['sub']}",
            kind="oidc",
            scopes=frozenset(s for s in given if s in keys.SCOPES),
            expires_at=float(claims["exp"]),
        )

    # --- session cookies ------------------------------------------------------------------
    def _sign(self, body: bytes) -> str:
        mac = hmac.new(self._session_key, body, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    async def session_cookie(self, principal: Principal) -> tuple[str, int]:
        """Start a server-side session for ``principal``: the signed cookie value (its session
        id) and its max age in seconds."""
        expires = time.time() + self.settings.session_ttl_s
        if principal.expires_at is not None:
            expires = min(expires, principal.expires_at)
        session_id = await sessions.start(
            self._pool(),
            subject=principal.subject,
            key_id=principal.key_id,
            scopes=principal.scopes,
            expires_at=expires,
        )
        return f"{session_id}.{self._sign(session_id.encode())}", max(0, int(expires - time.time()))

    def _session_id(self, value: str) -> str | None:
        """The session id of a cookie value whose signature holds, else ``None``."""
        session_id, _, mac = value.partition(".")
        if not (session_id and mac and value.isascii()):
            return None
        return session_id if hmac.compare_digest(mac, self._sign(session_id.encode())) else None

    async def from_cookie(self, value: str) -> Principal | None:
        """The caller of a session cookie: signature, then its session live (not revoked, not
        expired, its key not revoked) in the table."""
        session_id = self._session_id(value)
        found = None if session_id is None else await sessions.live(self._pool(), session_id)
        if found is None:
            return None
        return Principal(
            subject=found.subject, kind="session", scopes=found.scopes, secret="session_secret"
        )

    async def end_session(self, value: str) -> None:
        """Revoke the session of a cookie (``/logout``); a forged or unknown one is ignored."""
        session_id = self._session_id(value)
        if session_id is not None:
            await sessions.revoke(self._pool(), session_id)

    def refuse_weak_off_loopback(self, principal: Principal, request: Request) -> None:
        """A development secret leaked or guessed must not open this API to other machines."""
        if principal.secret is None or principal.secret not in self.weak:
            return  # an API key, a session, a token: no client address to read
        client = request.client.host if request.client else None
        if not exposure.is_loopback(client):
            name = exposure.env_name(self.settings, principal.secret)
            raise Unauthorized(
                f"this credential rests on {name}, which is unset or a development value and "
                f"works only from loopback: set {name} to a random value of "
                f"{exposure.MIN_SECRET_CHARS}+ characters"
            )


def authenticator(request: Request) -> Authenticator:
    auth: Authenticator = request.app.state.auth
    return auth


class Requirement:
    """The dependency ``require`` returns; ``scope`` stays readable (tests list every route's)."""

    def __init__(self, scope: str, cookie: bool) -> None:
        if scope not in keys.SCOPES:
            raise ValueError(f"unknown scope {scope!r}")
        self.scope = scope
        self.cookie = cookie

    async def __call__(self, request: Request, credentials: Credentials) -> Principal:
        auth = authenticator(request)
        principal: Principal | None = None
        if credentials is not None:
            principal = await auth.from_bearer(credentials.credentials)
        elif self.cookie and (value := request.cookies.get(COOKIE)):
            principal = await auth.from_cookie(value)
        if principal is None:
            missing = "a valid bearer credential is required"
            raise LoginRequired(missing) if self.cookie else Unauthorized(missing)
        auth.refuse_weak_off_loopback(principal, request)
        if not principal.allows(self.scope):
            raise Forbidden(f"this credential lacks the {self.scope!r} scope")
        request.state.principal = principal
        return principal


def require(scope: str, *, cookie: bool = False) -> params.Depends:
    """A dependency admitting callers with ``scope`` (401 without a credential, 403 without it).

    ``cookie=True`` (HTML pages) also accepts the session cookie set by ``/login``.
    """
    depends: params.Depends = Depends(Requirement(scope, cookie))
    return depends


# The dependency lists every capability's routes use (``dependencies=READ`` and so on).
READ: list[params.Depends] = [require("read")]  #: API reads
PAGE: list[params.Depends] = [require("read", cookie=True)]  #: HTML pages (bearer or /login)
WRITE: list[params.Depends] = [require("write")]  #: writes, including those that move money
