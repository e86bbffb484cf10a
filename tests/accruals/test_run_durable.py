"""The run under crashes: real `tether worker` processes killed with SIGKILL mid-run.

Every test compares the files to those of an uninterrupted run of the same snapshot.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.accruals.run_fixtures import generated_world
from tether.accruals import run
from tether.accruals.exports import LINES, NEM12, SUMMARY
from tether.accruals.settings import AccrualsSettings

PE = date(2026, 11, 30)
FILES = (SUMMARY, LINES, NEM12)
KNOBS = {"chunk_size": 4, "chunk_pause_s": 0.4, "min_contributors": 3, "dead_worker_s": 3.0}
SETTINGS = AccrualsSettings(**KNOBS)  # type: ignore[arg-type]
AS_AT = datetime(2026, 12, 2, tzinfo=run.AEST)  # past: a run never takes a future as-at


@pytest.fixture
async def world(db_url: str, tmp_path: Path) -> str:
    return await generated_world(db_url, tmp_path, PE)


def files(url: str) -> dict[str, bytes]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT name, content FROM acc.run_export WHERE period_end = %s", (PE,)
        ).fetchall()
    return {n: bytes(c) for n, c in rows if n in FILES}


def env(url: str, knobs: dict[str, Any] = KNOBS) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    out.update({f"TETHER_ACCRUALS_{k.upper()}": str(v) for k, v in knobs.items()})
    out.update({"DATABASE_URL": url, "TETHER_ACCRUALS_SCHEDULE": "", "TETHER_LOG_LEVEL": "WARNING"})
    return out


@pytest.fixture
def workers(world: str, tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Start `tether worker --only accruals` processes (each its own process group)."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def start_worker(
    url: str, log: Path, started: list[subprocess.Popen[bytes]], knobs: dict[str, Any] = KNOBS
) -> int:
    with log.open("ab") as out:
        p = subprocess.Popen(
            [sys.executable, "-m", "tether", "worker", "--only", "accruals"],
            env=env(url, knobs),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started.append(p)
    return len(started) - 1


def scalar(url: str, sql: str) -> object:
    with psycopg.connect(url) as conn:
        try:
            row = conn.execute(sql).fetchone()  # type: ignore[arg-type]
        except psycopg.errors.UndefinedTable:
            return None
    return None if row is None else row[0]


def wait_for(what: str, check: object, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def executors(url: str) -> int:
    return int(scalar(url, "SELECT count(*) FROM tether.workflow_executor") or 0)


def submit(url: str, knobs: dict[str, Any] = KNOBS) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tether",
            "accruals",
            "run",
            "--period-end",
            PE.isoformat(),
            "--no-wait",
        ],
        env=env(url, knobs),
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()


def chunks_done(url: str) -> int:
    """Chunks done by the crash runs (attempt 2): until a worker starts that attempt, the
    reference's chunks (attempt 1, all done) are still there."""
    sql = (
        "SELECT count(*) FROM acc.run_chunk c JOIN acc.run r USING (period_end)"
        " WHERE c.status = 'done' AND r.attempt = 2"
    )
    return int(scalar(url, sql) or 0)


def finished_attempt(url: str) -> object:
    return scalar(url, "SELECT attempt FROM acc.run WHERE status = 'finished'")


def reference(url: str) -> dict[str, bytes]:
    """An uninterrupted run of the same snapshot (attempt 1); the crash runs are attempt 2 (a
    re-run: the as-at and settings stored with the run date)."""
    run.run_inline(url, PE, AS_AT, SETTINGS)
    ref = files(url)
    # 28 of the 40 accounts: 12 have neither an invoice nor meter data up to the period end
    assert set(ref) == set(FILES) and ref[SUMMARY].count(b"\n") == 29
    return ref


def test_kill_9_mid_run_then_a_new_worker_resumes_with_identical_bytes(
    world: str, workers: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    ref = reference(world)
    first = start_worker(world, tmp_path / "w1.log", workers)
    wait_for("the worker's heartbeat", lambda: executors(world) == 1)
    submit(world)
    wait_for("two chunks priced", lambda: chunks_done(world) >= 2)
    assert chunks_done(world) < 7, "the run ended before the crash: slow the chunks down"
    os.killpg(workers[first].pid, signal.SIGKILL)
    workers[first].wait()
    start_worker(world, tmp_path / "w2.log", workers)  # a new process: another executor id
    wait_for("the resumed run to finish", lambda: finished_attempt(world) == 2)
    assert files(world) == ref
    assert scalar(world, "SELECT count(*) FROM acc.run_result") == 28


def test_two_workers_one_killed_the_other_finishes_with_identical_bytes(
    world: str, workers: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    ref = reference(world)
    for n in (1, 2):
        start_worker(world, tmp_path / f"w{n}.log", workers)
    wait_for("both heartbeats", lambda: executors(world) == 2)
    submit(world)
    wait_for("two chunks priced", lambda: chunks_done(world) >= 2)
    assert chunks_done(world) < 7, "the run ended before the crash: slow the chunks down"
    os.killpg(workers[0].pid, signal.SIGKILL)
    workers[0].wait()
    wait_for("the survivor to finish the run", lambda: finished_attempt(world) == 2)
    assert workers[1].poll() is None
    assert files(world) == ref


def test_a_rerun_by_processes_with_other_settings_gives_identical_bytes(
    world: str, workers: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    """The demo's case: a run made with its own settings, re-run from a shell and a worker with
    the defaults (min_contributors 30, chunk_size 2000) or others still: the figures are the
    run's, fixed when it was first submitted, whoever prepares and prices it."""
    ref = reference(world)
    other = {"chunk_size": 7, "min_contributors": 1, "profile_days": 20, "dead_worker_s": 3.0}
    start_worker(world, tmp_path / "w1.log", workers, other)
    wait_for("the worker's heartbeat", lambda: executors(world) == 1)
    submit(world, {})  # as from a shell: no TETHER_ACCRUALS_* at all
    wait_for("the re-run to finish", lambda: finished_attempt(world) == 2)
    assert files(world) == ref
    assert scalar(world, "SELECT settings->>'min_contributors' FROM acc.run") == "3"
