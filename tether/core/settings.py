"""Core configuration: read once from ``TETHER_*`` environment variables into one frozen object.

Core keeps the database, API, logging and broker settings; each capability has its own
settings class in ``<capability>/settings.py`` with its own prefix. Only ``settings.py``
modules read the environment.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tether.core.errors import ConfigurationError


class Settings(BaseSettings):
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
    port: int = 8000
    events_token: SecretStr = Field(
        default=SecretStr("dev-events-token"), description="Bearer token for POST /api/v1/events."
    )
    log_level: str = "INFO"
    log_json: bool = Field(default=False, description="Log one JSON object per line.")

    # --- worker -------------------------------------------------------------------------------
    worker_metrics_port: int | None = Field(
        default=None,
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
    nats_url: str | None = Field(default=None, description="NATS server for events and queues.")

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
    oidc_jwks_url: str | None = Field(default=None, description="JWKS URL of the issuer.")
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
            raise ConfigurationError(
                "OIDC needs both TETHER_OIDC_ISSUER and TETHER_OIDC_JWKS_URL (and "
                "TETHER_OIDC_AUDIENCE); set the missing one, or neither to turn OIDC off"
            )
        if self.oidc_issuer and not self.oidc_audience:
            raise ConfigurationError(
                "TETHER_OIDC_ISSUER and TETHER_OIDC_JWKS_URL are set without TETHER_OIDC_AUDIENCE: "
                "set it to the audience (aud) the issuer puts in tokens for this API"
            )


class SimulatorSettings(BaseSettings):
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
