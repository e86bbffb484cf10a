"""Settings of the accruals capability (``TETHER_ACCRUALS_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class AccrualsSettings(BaseSettings):
    """Knobs of the run: snapshot, estimation, chunking, schedule and exports."""

    model_config = SettingsConfigDict(env_prefix="TETHER_ACCRUALS_", frozen=True, extra="ignore")

    as_at_lag_days: int = Field(
        default=7,
        description="Default as-at = period end + this many days, 00:00 market time (AEST), so a"
        " re-run without --as-at sees the same snapshot.",
    )
    superseded_retention_days: int = Field(
        default=400,
        ge=1,
        description="Replaced meter data versions are kept this long (purge-superseded), so a"
        " re-run as at a time within it (a year's run dates) still sees the same snapshot.",
    )
    profile_days: int = Field(default=35, description="Days of actual reads behind a profile.")
    history_days: int = Field(default=91, description="Window of the micro-scalar history.")
    min_contributors: int = Field(default=30, description="NMIs a segment profile needs.")
    max_contributors: int = Field(
        default=300, description="NMIs per distributor segment a profile is averaged over."
    )
    scalar_min: float = 0.05
    scalar_max: float = 20.0
    chunk_size: int = Field(default=2000, description="Accounts per queued chunk.")
    worker_concurrency: int = Field(default=1, description="Chunks one worker prices at once.")
    global_concurrency: int = Field(default=4, description="Chunks priced at once, all workers.")
    schedule: str = Field(
        default="0 2 3 * *",
        description="Cron (UTC) of the scheduled run; it runs for the last day of the previous"
        " month. Empty: no schedule.",
    )
    purge_schedule: str = Field(
        default="30 3 * * *",
        description="Cron (UTC) of the purge of superseded meter data past"
        " superseded_retention_days (tether accruals purge-superseded). Empty: no schedule.",
    )
    export_dir: Path = Field(default=Path("accruals-exports"), description="CLI export folder.")
    chunk_pause_s: float = Field(
        default=0, description="Pause before each chunk (crash drills and demos only)."
    )
    dead_worker_s: float = Field(
        default=30, description="A worker silent this long is dead; a live one resumes its work."
    )
