"""E-licensing settings: ``TETHER_ELICENSING_*`` environment variables."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from tether.core.setting_types import TimeZoneName, UpstreamUrl
from tether.core.settings import TetherSettings


class ElicensingSettings(TetherSettings):
    """Each field maps to ``TETHER_ELICENSING_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="TETHER_ELICENSING_", frozen=True, extra="ignore")

    url: UpstreamUrl = "http://127.0.0.1:7002"
    token: SecretStr = SecretStr("dev-elicensing-token")
    connect_timeout_s: float = 2.0
    read_timeout_s: float = 5.0
    freshness_s: float = Field(default=900, description="Skip refresh within this age.")
    breaker_failure_threshold: int = 3
    breaker_open_s: float = Field(default=30, description="Open circuit wait before a probe.")
    upstream_concurrency: int = Field(
        default=128,
        ge=1,
        description="Invoice calls to e-licensing one process has out at once.",
    )
    refresh_concurrency: int = Field(
        default=8,
        ge=1,
        description="Refreshes one process saves at once, each on one refresh-pool connection.",
    )
    refresh_queue_s: float = Field(
        default=2.0,
        ge=0,
        description="How long a read waits for a call slot before answering stale (busy).",
    )
    timezone: TimeZoneName = Field(
        default="America/Vancouver", description="Time zone dates and times are shown in."
    )
