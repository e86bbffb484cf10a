"""Configuration: read once from ``TETHER_*`` environment variables into one frozen object.

Nothing else in tether reads the environment; ``bootstrap`` and the CLI receive a ``Settings``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob tether has. Each field maps to ``TETHER_<FIELD>`` (``DATABASE_URL`` too)."""

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
    timezone: str = Field(default="Europe/Oslo", description="Local time zone of the datahub.")

    # --- API -----------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8000
    events_token: SecretStr = Field(
        default=SecretStr("dev-events-token"), description="Bearer token for POST /api/v1/events."
    )
    log_level: str = "INFO"
    log_json: bool = Field(default=False, description="Log one JSON object per line.")

    # --- accounting point adapter ------------------------------------------------------------
    adapter_url: str = "http://127.0.0.1:7001"
    adapter_token: SecretStr = SecretStr("dev-adapter-token")
    adapter_timeout_s: float = 6.0
    adapter_retries: int = 2
    ap_resync_interval_s: float = Field(default=23 * 3600, description="Re-sync a synced AP after.")
    ap_dead_sync_timeout_s: float = Field(default=600, description="A claimed sync is dead after.")
    ap_retry_base_s: float = Field(default=30, description="First retry delay after a failure.")
    ap_retry_max_s: float = Field(default=6 * 3600, description="Cap of the retry backoff.")
    ap_claim_batch: int = Field(default=100, description="APs a worker claims per statement.")
    ap_batch_apply: bool = Field(
        default=True,
        description="Merge a claimed batch in one transaction (else one transaction per AP).",
    )
    ap_fetch_concurrency: int = Field(default=32, description="Adapter calls in flight per worker.")
    ap_poll_interval_s: float = 1.0

    # --- events ------------------------------------------------------------------------------
    nats_url: str | None = Field(default=None, description="NATS server for pulled events.")
    nats_stream: str = "DATAHUB"
    nats_subject: str = "datahub.accounting_point.changed"
    nats_durable: str = "tether-accounting-points"

    # --- e-licensing ---------------------------------------------------------------------------
    elicensing_url: str = "http://127.0.0.1:7002"
    elicensing_token: SecretStr = SecretStr("dev-elicensing-token")
    elicensing_connect_timeout_s: float = 2.0
    elicensing_read_timeout_s: float = 5.0
    elicensing_freshness_s: float = Field(default=900, description="Skip refresh within this age.")
    breaker_failure_threshold: int = 3
    breaker_open_s: float = Field(default=30, description="Open circuit wait before a probe.")

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
    max_body_bytes: int = Field(default=1_000_000, description="Largest request body accepted.")
    db_pool_timeout_s: float = Field(default=2.0, description="Wait for a pool connection.")
    migrate: bool = Field(default=True, description="serve/worker apply migrations at start.")
    limit_concurrency: int = Field(default=1000, description="Connections+tasks before 503.")
    timeout_keep_alive_s: int = Field(default=5, description="Close idle keep-alive after.")
    max_header_bytes: int = Field(default=16_384, description="Largest request head (h11).")


def load_settings(**overrides: object) -> Settings:
    """Read the environment, with explicit overrides winning (used by tests and the demo)."""
    return Settings(**overrides)  # type: ignore[arg-type]
