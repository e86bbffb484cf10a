"""Accounting point sync settings: ``TETHER_AP_*`` environment variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from tether.core.setting_types import TimeZoneName, UpstreamUrl
from tether.core.settings import TetherSettings


class AccountingPointSettings(TetherSettings):
    """Each field maps to ``TETHER_AP_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="TETHER_AP_", frozen=True, extra="ignore")
    also_read = ("TETHER_ADAPTER_TOKEN", "TETHER_TIMEZONE")  # `simulate datahub` falls back to them

    timezone: TimeZoneName = Field(
        default="Europe/Oslo", description="Local time zone of the datahub."
    )
    adapter_url: UpstreamUrl = "http://127.0.0.1:7001"
    adapter_token: SecretStr = SecretStr("dev-adapter-token")
    pii_key: SecretStr = Field(
        default=SecretStr("dev-pii-key"),
        description="HMAC key for person ids: they are stored only as its keyed hash.",
    )
    adapter_timeout_s: float = 6.0
    adapter_retries: int = 2
    resync_interval_s: float = Field(default=23 * 3600, description="Re-sync a synced AP after.")
    dead_sync_timeout_s: float = Field(default=600, description="A claimed sync is dead after.")
    claim_lease_s: float = Field(
        default=45, description="A claim lapses after this long without its worker's heartbeat."
    )
    retry_base_s: float = Field(default=30, description="First retry delay after a failure.")
    retry_max_s: float = Field(default=6 * 3600, description="Cap of the retry backoff.")
    gone_after_404s: int = Field(
        default=3, description="Consecutive 404s after which an AP is flagged gone."
    )
    gone_recheck_s: float = Field(
        default=7 * 24 * 3600, description="How often an AP flagged gone is checked again."
    )
    breaker_failure_threshold: int = Field(
        default=3, description="Batches or lookups in a row that find the datahub down: open."
    )
    breaker_open_s: float = Field(default=30, description="Open circuit wait before a probe.")
    unknown_party: Literal["reject", "accept_unverified"] = Field(
        default="reject",
        description="An answer naming an unknown supplier or grid area: reject it (409 / sync "
        "failure 'unknown_reference'), or accept the party flagged unverified.",
    )
    claim_batch: int = Field(default=100, description="APs a worker claims per statement.")
    batch_apply: bool = Field(
        default=True,
        description="Merge a claimed batch in one transaction (else one transaction per AP).",
    )
    fetch_concurrency: int = Field(default=32, description="Adapter calls in flight per worker.")
    merge_group_wait_s: float = Field(
        default=0.05,
        ge=0,
        description="A batch's answers are merged in groups: what arrived within this long of "
        "the group's first answer (a slow fetch then holds back nobody else).",
    )
    poll_interval_s: float = 1.0
    event_types: list[str] = Field(
        default=["no.datahub.accounting_point.changed"],
        description="CloudEvent types accepted as 'AP changed' (JSON list); others get 422.",
    )
    max_events_per_batch: int = Field(default=1000, description="Events in one POST at most.")
    nats_stream: str = "DATAHUB"
    nats_subject: str = "datahub.accounting_point.changed"
    nats_durable: str = "tether-accounting-points"
    # at least 1: the guide's curl lines name the first unit's AP (none was an IndexError after
    # the demo had migrated); at most what the demo sets up in about half a minute (the datahub
    # generates an AP in 0.25 ms with 5 KB of memory; each unit is registered and synced before
    # the demo serves): ten times more took minutes and gigabytes before anything was served
    demo_accounting_points: int = Field(
        default=300, ge=1, le=100_000, description="APs in the demo's datahub."
    )
    demo_controllable_units: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description="Demo APs that get a controllable unit (and so are synced).",
    )
