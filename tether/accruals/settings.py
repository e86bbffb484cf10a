"""Settings of the accruals capability (``TETHER_ACCRUALS_*``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from tether.core.setting_types import CronSchedule
from tether.core.settings import TetherSettings

#: The settings that change a run's figures: fixed for a run when it is submitted and stored
#: with it (acc.run.settings), so every executor prices with the same ones and a re-run of the
#: run date reuses them. The others (chunk size, concurrency, schedules...) do not change a
#: figure, so each process keeps its own.
RUN_FIELDS = (
    "profile_days",
    "history_days",
    "min_contributors",
    "max_contributors",
    "scalar_min",
    "scalar_max",
)


class AccrualsSettings(TetherSettings):
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
    schedule: CronSchedule = Field(
        default="0 2 8 * *",
        description="Cron (UTC) of the scheduled run; it runs for the last day of the previous"
        " month, and must fire after its default as-at (period end + as_at_lag_days, 00:00"
        " AEST: the 6th 14:00 UTC by default), which a run never takes in the future. Empty:"
        " no schedule.",
    )
    purge_schedule: CronSchedule = Field(
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

    def run_settings(self) -> dict[str, Any]:
        """The values of RUN_FIELDS: what a submit fixes for the run."""
        return {name: getattr(self, name) for name in RUN_FIELDS}

    def for_run(self, fixed: Mapping[str, Any] | None) -> AccrualsSettings:
        """These settings with a run's fixed ones (None: a run from before they were stored)."""
        if not fixed:
            return self
        return self.model_copy(update={k: fixed[k] for k in RUN_FIELDS if k in fixed})
