"""What ``tether.worker_process`` says about a worker's children: the jobs that still run, and
a child killed at once (its parent knows), not 30 s later."""

from __future__ import annotations

import time
from pathlib import Path

from tests.test_worker import WAIT_S, start_worker, stop_and_check, wait_for_children, worker_rows


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
