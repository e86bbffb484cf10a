"""Run progress as Prometheus metrics, read from the database at scrape time (the run happens
in the workers; any API process reports the same figures)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import psycopg
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from tether.accruals.sql import Q

logger = logging.getLogger(__name__)


class RunProgress(Collector):
    """Chunks, accounts and failures of the most recent runs (one sample set per period end)."""

    def __init__(self) -> None:
        self.url: str | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        chunks = GaugeMetricFamily(
            "tether_accruals_run_chunks", "Chunks of a run by state", labels=["period_end", "state"]
        )
        failed = GaugeMetricFamily(
            "tether_accruals_run_failed_accounts",
            "Accounts a run could not price",
            labels=["period_end"],
        )
        running = GaugeMetricFamily(
            "tether_accruals_run_running", "1 while a run is in progress", labels=["period_end"]
        )
        if self.url:
            try:
                with psycopg.connect(self.url, connect_timeout=2) as conn:
                    rows = conn.execute(Q["run_metrics"]).fetchall()
            except psycopg.Error as exc:  # a scrape must not fail because of us
                logger.warning("accruals metrics unavailable: %s", exc)
                rows = []
            for period_end, status, done, total, failures in rows:
                pe = period_end.isoformat()
                chunks.add_metric([pe, "done"], done)
                chunks.add_metric([pe, "total"], total)
                failed.add_metric([pe], failures)
                running.add_metric([pe], 1 if status == "running" else 0)
        yield from (chunks, failed, running)


PROGRESS = RunProgress()
REGISTRY.register(PROGRESS)
