"""Core configuration: read once from ``TETHER_*`` environment variables into one frozen object.

Core keeps the database, API, logging and broker settings; each capability has its own
settings class in ``<capability>/settings.py`` with its own prefix. Only ``settings.py``
modules read the environment.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import pydantic_settings
from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tether.core.errors import InvalidSetting
from tether.core.setting_types import (
    LogLevel,
    NatsUrl,
    OptionalUpstreamUrl,
    explain,
    explain_unparsed,
    variable,
)

logger = logging.getLogger(__name__)

#: ``TETHER_*`` variables that are no setting of tether's: read by its test and benchmark
#: suites only. Any other unknown name gets a warning (``warn_unknown``).
NOT_SETTINGS = ("TETHER_TEST_DATABASE_URL", "TETHER_BENCH_DATABASE_URL")


class TetherSettings(BaseSettings):
    """Base of every settings class: a value that cannot be read is an ``InvalidSetting`` naming
    its variable (``TETHER_PORT='abc': not a whole number (e.g. 8000)``), not pydantic's page
    about the field, whichever command reads it first."""

    # inf (and nan) is no number of seconds or bytes: an "inf" time limit silently turned the
    # deadline off. Every class inherits this (pydantic merges a subclass's config into it).
    model_config = SettingsConfigDict(allow_inf_nan=False)

    #: Variables a class's commands read besides its fields (a simulator's option that falls
    #: back to an older name): known, so not warned about as unknown.
    also_read: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise InvalidSetting(explain(type(self), exc)) from None
        except pydantic_settings.SettingsError as exc:  # a list that is not JSON
            fields = type(self).model_fields
            name = next((f for f in fields if f'field "{f}"' in str(exc)), "")
            value = _environ_value(variable(type(self), name)) if name else None
            raise InvalidSetting(explain_unparsed(type(self), name, value)) from None


def _environ_value(name: str) -> str | None:
    """A variable's value, its name in any case (as pydantic-settings reads it)."""
    return next((v for k, v in os.environ.items() if k.upper() == name.upper()), None)


class Settings(TetherSettings):
    """The knobs every process has. Each field maps to ``TETHER_<FIELD>`` (and ``DATABASE_URL``)."""

    model_config = SettingsConfigDict(env_prefix="TETHER_", frozen=True, extra="ignore")

    # --- database -----------------------------------------------------------------------------
    database_url: str | None = Field(
        default=None,
        validation_alias="DATABASE_URL",
        description="PostgreSQL URL. Unset: an embedded PostgreSQL in `data_dir` is started.",
    )
    data_dir: Path = Field(default=Path(".tether"), description="Folder of embedded PostgreSQL.")
    db_pool_min: int = 1
    db_pool_max: int = 10

    # --- API -----------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    events_token: SecretStr = Field(
        default=SecretStr("dev-events-token"), description="Bearer token for POST /api/v1/events."
    )
    log_level: LogLevel = "INFO"
    log_json: bool = Field(default=False, description="Log one JSON object per line.")

    # --- worker -------------------------------------------------------------------------------
    worker_metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="`tether worker` serves its processes' counters on this port (off: unset).",
    )
    worker_metrics_host: str = Field(
        default="127.0.0.1", description="Bind address of the worker metrics port."
    )
    worker_deferred_nice: int = Field(
        default=19,
        ge=0,
        le=19,
        description="`tether worker` runs the jobs nobody waits on (`Job.deferred`: sending, "
        "receipts, status publishing) in processes of their own at this much lower OS priority "
        "(nice), so intake keeps its latency when the cores are busy; 0: every job in every "
        "process at one priority.",
    )

    # --- broker --------------------------------------------------------------------------------
    nats_url: NatsUrl = Field(default=None, description="NATS server for events and queues.")

    # --- security ----------------------------------------------------------------------------
    session_secret: SecretStr | None = Field(
        default=None,
        description="Signs the pages' session cookies. Unset: random per process (dev only).",
    )
    session_ttl_s: int = Field(default=8 * 3600, description="Lifetime of a login session.")
    session_cookie_secure: bool = Field(
        default=False, description="Mark the session cookie Secure (set true behind HTTPS)."
    )
    oidc_issuer: str | None = Field(default=None, description="Accept JWTs of this issuer.")
    oidc_audience: str | None = Field(default=None, description="Required JWT audience.")
    oidc_jwks_url: OptionalUpstreamUrl = Field(default=None, description="JWKS URL of the issuer.")
    oidc_scope_claim: str = Field(default="scope", description="JWT claim holding the scopes.")
    api_key_cache_s: float = Field(
        default=30.0,
        ge=0,
        description="Keep verified API keys this long in the process (0: check every request); "
        "a revoked key is dropped at once by a database notification.",
    )
    login_max_failures: int = Field(
        default=10,
        ge=0,
        description="Failed sign-ins at /login from one client address before it gets 429 "
        "until its window ends (0: no limit).",
    )
    login_failure_window_s: float = Field(
        default=300.0, gt=0, description="The window the failed sign-ins are counted in."
    )
    max_body_bytes: int = Field(default=1_000_000, description="Largest request body accepted.")
    db_pool_timeout_s: float = Field(default=2.0, description="Wait for a pool connection.")
    migrate: bool = Field(default=True, description="serve/worker apply migrations at start.")
    limit_concurrency: int = Field(default=1000, description="Connections+tasks before 503.")
    timeout_keep_alive_s: int = Field(default=5, description="Close idle keep-alive after.")
    max_header_bytes: int = Field(default=16_384, description="Largest request head (431 beyond).")
    head_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="`serve` closes a connection whose request head is not complete this long "
        "after it connected or sent the request's first byte (408).",
    )
    body_timeout_s: float = Field(
        default=30.0, gt=0, description="Likewise for a request body, from the end of its head."
    )
    send_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="`serve` aborts a connection whose client reads nothing of its response "
        "this long while the server's send buffer is full.",
    )

    @model_validator(mode="after")
    def _oidc_needs_audience(self) -> Settings:
        self.check_oidc()
        return self

    def check_oidc(self) -> None:
        """OIDC without an audience would accept tokens the issuer gave any other app; half of
        its settings would leave it silently off while the operator thinks it on."""
        if bool(self.oidc_issuer) != bool(self.oidc_jwks_url):
            raise InvalidSetting(
                "OIDC needs both TETHER_OIDC_ISSUER and TETHER_OIDC_JWKS_URL (and "
                "TETHER_OIDC_AUDIENCE); set the missing one, or neither to turn OIDC off"
            )
        if self.oidc_issuer and not self.oidc_audience:
            raise InvalidSetting(
                "TETHER_OIDC_ISSUER and TETHER_OIDC_JWKS_URL are set without TETHER_OIDC_AUDIENCE: "
                "set it to the audience (aud) the issuer puts in tokens for this API"
            )


class SimulatorSettings(TetherSettings):
    """``tether simulate <name>``: ``TETHER_SIMULATOR_*``. Apart from ``Settings``, whose unset
    secrets stop ``serve`` and ``worker`` off loopback: this one only simulators need."""

    model_config = SettingsConfigDict(env_prefix="TETHER_SIMULATOR_", frozen=True, extra="ignore")

    control_token: SecretStr | None = Field(
        default=None,
        description="Bearer token of every simulator's control port. Unset: random per start, "
        "printed with the control URL.",
    )


def load_settings(**overrides: object) -> Settings:
    """Read the environment, with explicit overrides winning (used by tests and the demo)."""
    return Settings(**overrides)  # type: ignore[arg-type]


def check_environment(classes: Iterable[type[TetherSettings]]) -> None:
    """Read every settings class once, so a bad value stops any command before it starts
    (whichever settings it reads itself; ``InvalidSetting``), and warn of each ``TETHER_*``
    variable none of them reads: a misspelt name (``TETHER_API_PORT``) was silently the
    default."""
    classes = list(classes)
    for cls in classes:
        cls()
    warn_unknown(classes)


def known_variables(classes: Iterable[type[BaseSettings]]) -> set[str]:
    """Every variable the settings ``classes`` read, upper case."""
    names = set(NOT_SETTINGS)
    for cls in classes:
        names |= {variable(cls, field) for field in cls.model_fields}
        names |= {n.upper() for n in getattr(cls, "also_read", ())}
    return names


def warn_unknown(classes: Iterable[type[BaseSettings]]) -> list[str]:
    """Warn, one line each, of the ``TETHER_*`` variables no settings class reads, with the
    closest known name if one is close; returns the unknown names."""
    known = sorted(known_variables(classes))
    unknown = sorted(
        k for k in os.environ if k.upper().startswith("TETHER_") and k.upper() not in known
    )
    for name in unknown:
        close = difflib.get_close_matches(name.upper(), known, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        logger.warning(
            "unknown variable %s is ignored (no tether setting has that name)%s",
            name,
            hint,
            extra={"action": "unknown_setting"},
        )
    return unknown


@contextmanager
def exported(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the child processes spawned inside the block (they inherit
    the environment at start), then restore the previous values."""
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
