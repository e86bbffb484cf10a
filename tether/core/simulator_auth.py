"""The control token every simulator's control port requires (``simulator.SimulatorServer``).

Whoever reaches a control port can switch the simulated system off or rewrite its data, so
every request there needs ``Authorization: Bearer <control token>``. The token comes from
``--control-token`` or ``TETHER_SIMULATOR_CONTROL_TOKEN``; unset, a random one is made at start
and printed once. A short or ``dev-`` token is refused when the simulator listens off loopback.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

import typer
from pydantic import SecretStr
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from tether.core import exposure
from tether.core.errors import ConfigurationError
from tether.core.settings import SimulatorSettings

CONTROL_TOKEN_ENV = "TETHER_SIMULATOR_CONTROL_TOKEN"
ControlTokenOption = Annotated[
    str | None,
    typer.Option(
        help=f"Bearer token of the control port [{CONTROL_TOKEN_ENV}]; unset: random, printed."
    ),
]
UNAUTHORIZED = (
    "missing or wrong control token: send the header 'Authorization: Bearer <token>'; the token "
    f"is --control-token or {CONTROL_TOKEN_ENV}, else the random one the simulator printed at "
    "start (in-process: SimulatorServer.control_token)"
)


def configured_token(option: str | None) -> str | None:
    """``--control-token``, else ``TETHER_SIMULATOR_CONTROL_TOKEN``; None: one is generated."""
    configured = option or SimulatorSettings().control_token
    return configured.get_secret_value() if isinstance(configured, SecretStr) else configured


def checked_token(token: str | None, host: str) -> str:
    """The control token, generated when unset; a weak one is refused off loopback."""
    if not token:
        return secrets.token_urlsafe(24)
    _refuse_weak(
        token,
        host,
        "control port",
        f"control token: set {CONTROL_TOKEN_ENV} (or --control-token) to a random value of "
        f"{exposure.MIN_SECRET_CHARS}+ characters, or leave it unset for a random one",
    )
    return token


def refuse_weak_data_token(token: str, host: str) -> None:
    """The simulated system's own bearer token (its data port): a published ``dev-`` default or
    a short one works only when the simulator listens on loopback."""
    _refuse_weak(
        token,
        host,
        "data port",
        "token: pass --token (or its environment variable) a random value of "
        f"{exposure.MIN_SECRET_CHARS}+ characters",
    )


def _refuse_weak(token: str, host: str, port: str, remedy: str) -> None:
    if not exposure.binds_loopback(host) and exposure.is_weak(SecretStr(token)):
        raise ConfigurationError(
            f"refusing to serve a simulator's {port} on {host or 'every interface'} "
            f"with a short or development {remedy}"
        )


def banner(url: str, shown: str, generated: bool) -> str:
    """The line a simulator prints once at start, so an operator can use its control port."""
    origin = (
        f"made at start; choose one with --control-token or {CONTROL_TOKEN_ENV}"
        if generated
        else f"the one --control-token or {CONTROL_TOKEN_ENV} set"
    )
    return f"control port {url}: send 'Authorization: Bearer {shown}' ({origin})"


class ControlAuth:
    """ASGI middleware in front of a whole control app, so the routes a capability adds are
    guarded too; the token is compared in constant time."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" or self._allowed(scope):
            return await self.app(scope, receive, send)
        if scope["type"] != "http":  # no websocket routes; refuse one all the same
            return await send({"type": "websocket.close", "code": 1008})
        answer = JSONResponse({"detail": UNAUTHORIZED}, 401, {"WWW-Authenticate": "Bearer"})
        await answer(scope, receive, send)

    def _allowed(self, scope: Scope) -> bool:
        value = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        scheme, _, token = value.partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self._token)
