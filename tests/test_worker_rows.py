"""What ``tether.worker_process`` says about a worker's children: the jobs that still run, and
a child killed at once (its parent knows), not 30 s later."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from tests.test_worker import (
    WAIT_S,
    reap,
    start_worker,
    stop_and_check,
    wait_for_children,
    worker_rows,
)
from tether.core import health, workers


def test_a_job_that_ended_is_no_longer_listed_in_its_process_row(
    db_url: str, tmp_path: Path
) -> None:
    """Without NATS the payments jobs end at once, yet every prompt process listed
    payments.intake among its jobs. The row lists the jobs still running."""
    proc = start_worker(
        db_url, tmp_path, "--processes", "1", "--only", "payments", "--only", "accounting-points"
    )
    try:
        kids = wait_for_children(proc, 1)
        deadline = time.monotonic() + WAIT_S
        while not (rows := [r for r in worker_rows(db_url) if r[1] == "prompt"]):
            assert time.monotonic() < deadline, "no prompt row"
            time.sleep(0.1)
        deadline = time.monotonic() + 8  # under two beats: the row is beaten when a job ends
        while len(rows[0][2]) > 1 and time.monotonic() < deadline:
            time.sleep(0.1)
            rows = [r for r in worker_rows(db_url) if r[1] == "prompt"]
        assert rows[0][2] == ["accounting-points.sync"]  # without NATS events ended too
        stop_and_check(proc, wait_for_children(proc, 1) & kids)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_killed_childs_row_goes_at_once_and_its_death_is_counted(
    db_url: str, tmp_path: Path
) -> None:
    """A child killed with kill -9 counted as alive until its row was silent for 30 s, while
    its parent knew at once. The parent deletes the row when it reaps the child and records
    the death, which the Service panel and /metrics count."""
    proc = start_worker(db_url, tmp_path, "--processes", "1", "--only", "accounting-points")
    kids: set[int] = set()
    try:
        (first,) = kids = wait_for_children(proc, 1)
        deadline = time.monotonic() + WAIT_S
        while first not in {r[0] for r in worker_rows(db_url)}:
            assert time.monotonic() < deadline, "no row for the child"
            time.sleep(0.1)
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 10  # well within the 30 s a silent row counts as alive
        while first in {r[0] for r in worker_rows(db_url)} and time.monotonic() < deadline:
            time.sleep(0.1)
        assert first not in {r[0] for r in worker_rows(db_url)}
        with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
            rows = conn.execute(
                workers.Q["worker_processes"], {"dead_after_s": workers.DEAD_AFTER_S, "limit": 9}
            ).fetchall()
            deaths = conn.execute(workers.Q["child_deaths"], {"window_s": 3600}).fetchall()
        panel = health.build_panel(rows, deaths)
        counted = [r.value for r in panel.rows if r.label == "child deaths in the last 1 h"]
        assert len(counted) == 1 and counted[0].startswith("1 (prompt 1; last killed by SIGKILL")
        gauges = {
            (g.name, tuple(g.labels.values())): g.value
            for g in panel.gauges
            if g.name == "tether_worker_child_deaths_last_hour"
        }
        assert gauges == {("tether_worker_child_deaths_last_hour", ("prompt",)): 1.0}
        kids = wait_for_children(proc, 1) - {first}
        stop_and_check(proc, kids)
    finally:
        reap(proc, kids)
