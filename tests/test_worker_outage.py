"""``tether worker`` through an outage: the log says what failed once, and the truth after."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import psycopg
import pytest

from tests.test_worker import WAIT_S, reap, stop_and_check, wait_for_children
from tether import worker
from tether.core.capability import Job, JobContext


async def supervised_log(
    caplog: pytest.LogCaptureFixture, run: Callable[[JobContext], Awaitable[None]]
) -> list[logging.LogRecord]:
    """Supervise ``run`` until it logs its recovery, then stop it: its log lines."""
    recovered = asyncio.Event()

    def note(record: logging.LogRecord) -> bool:
        if getattr(record, "action", None) == "job_recovered":
            recovered.set()
        return True

    stop = asyncio.Event()
    ctx = JobContext(runtime=None, service=None, stop=stop, once=False, worker_id="w")  # type: ignore[arg-type]
    worker.logger.addFilter(note)
    try:
        with caplog.at_level(logging.INFO, logger=worker.logger.name):
            job = asyncio.create_task(worker.supervised(Job(name="db", run=run), ctx, "t.db"))
            await asyncio.wait_for(recovered.wait(), 10)
            stop.set()
            await job
    finally:
        worker.logger.removeFilter(note)
    return [r for r in caplog.records if r.name == worker.logger.name]


def actions(lines: list[logging.LogRecord]) -> list[tuple[str | None, bool]]:
    """Each line as (its action, whether it has a traceback)."""
    return [(getattr(r, "action", None), r.exc_info is not None) for r in lines]


async def test_an_outage_logs_one_traceback_then_short_lines_then_its_recovery(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """While the database is down a job fails on every restart: one traceback per restart
    flooded the log for as long as the outage lasted. Now: one traceback, a short line per
    failure saying for how long, a traceback for a new error, and a line when it runs again."""
    monkeypatch.setattr(worker, "RESTART_BASE_S", 0.01)
    monkeypatch.setattr(worker, "RECOVERED_AFTER_S", 0.2)
    errors = [ConnectionError("database down")] * 4 + [ValueError("other")]

    async def flaky(ctx: JobContext) -> None:
        if errors:
            raise errors.pop(0)
        await ctx.stop.wait()  # runs, as a healthy job does, until the worker stops

    assert actions(await supervised_log(caplog, flaky)) == [
        ("job_restarted", True),
        ("job_still_failing", False),
        ("job_still_failing", False),
        ("job_still_failing", False),
        ("job_restarted", True),  # another error: its own traceback
        ("job_recovered", False),
    ]


async def test_the_same_error_wrapped_or_with_other_numbers_has_no_second_traceback(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """accruals.executor printed a traceback at failure 1 (psycopg's OperationalError) and 2
    (sqlalchemy's OperationalError around the same one, from DBOS' launch). Now an error is
    its root cause, its digits (ports, pids) aside."""
    monkeypatch.setattr(worker, "RESTART_BASE_S", 0.01)
    monkeypatch.setattr(worker, "RECOVERED_AFTER_S", 0.2)

    def wrapped(pid: int) -> Exception:
        try:
            try:
                raise psycopg.OperationalError(f"connection failed: backend pid {pid}\n\thint")
            except psycopg.OperationalError as exc:
                raise RuntimeError(f"(psycopg.OperationalError) {exc}\n(background)") from exc
        except RuntimeError as outer:
            return outer

    errors = [psycopg.OperationalError("connection failed: backend pid 11"), wrapped(12)]
    errors += [wrapped(13), ValueError("other")]

    async def flaky(ctx: JobContext) -> None:
        if errors:
            raise errors.pop(0)
        await ctx.stop.wait()

    assert actions(await supervised_log(caplog, flaky)) == [
        ("job_restarted", True),
        ("job_still_failing", False),
        ("job_still_failing", False),
        ("job_restarted", True),
        ("job_recovered", False),
    ]


async def test_a_backoff_longer_than_the_recovery_period_is_no_recovery(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The "recovered" timer ran on through the backoff, so a pause of 16 s or more (recovery
    after 10 s) logged "job recovered" mid-outage and forgot the errors seen: the next failure
    printed its traceback again. Now only a run that lasts the period is a recovery."""
    monkeypatch.setattr(worker, "RESTART_BASE_S", 0.1)  # pauses 0.1, 0.2, 0.4 s
    monkeypatch.setattr(worker, "RECOVERED_AFTER_S", 0.15)
    failures = 4

    async def down(ctx: JobContext) -> None:
        nonlocal failures
        if failures:
            failures -= 1
            raise ConnectionError("database down")
        await ctx.stop.wait()

    lines = await supervised_log(caplog, down)
    assert actions(lines) == [
        ("job_restarted", True),
        ("job_still_failing", False),
        ("job_still_failing", False),
        ("job_still_failing", False),
        ("job_recovered", False),  # once it really ran 0.15 s
    ]
    assert "4 failure(s)" in lines[-1].getMessage()


def start_logged_worker(db_url: str, tmp_path: Path, *, deaths_max: int) -> subprocess.Popen[bytes]:
    """``tether worker`` (accounting-points: jobs that run until stopped), its log in a file;
    ``deaths_max`` set in the parent before it starts (the test's short window of patience)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env.update(DATABASE_URL=db_url, TETHER_DATA_DIR=str(tmp_path / "data"))
    code = (
        "import sys; import tether.worker_children as w; "
        f"w.DEATHS_MAX = {deaths_max}; w.RESPAWN_BASE_S = 0.2; "
        "sys.argv = ['tether', 'worker', '--processes', '1', '--only', 'accounting-points']; "
        "from tether.cli import main; main()"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "worker.log").open("wb"),
        start_new_session=True,
    )


def new_child(proc: subprocess.Popen[bytes], old: set[int]) -> int:
    """A child of ``proc`` not in ``old`` (a replacement), once there is one."""
    deadline = time.monotonic() + WAIT_S
    while not (kids := wait_for_children(proc, 1) - old):
        assert time.monotonic() < deadline, "no child started in the place of the killed one"
        time.sleep(0.05)
    return kids.pop()


def test_a_killed_child_is_logged_and_replaced(db_url: str, tmp_path: Path) -> None:
    """kill -9 of a child left the parent and the other children running, its jobs stopped and
    nothing logged. Now the parent logs an ERROR naming it and starts another."""
    proc = start_logged_worker(db_url, tmp_path, deaths_max=5)
    kids: set[int] = set()
    try:
        (first,) = kids = wait_for_children(proc, 1)
        os.kill(first, signal.SIGKILL)
        kids = {new_child(proc, {first})}
        stop_and_check(proc, kids)
    finally:
        reap(proc, kids)
    log = (tmp_path / "worker.log").read_text()
    died = [line for line in log.splitlines() if "action=worker_child_died" in line]
    assert len(died) == 1 and " ERROR tether.worker " in died[0]
    assert f"pid {first}" in died[0] and "killed by SIGKILL" in died[0]
    assert "lane prompt" in died[0] and "accounting-points.sync" in died[0]


def test_children_that_keep_dying_stop_the_worker_with_a_failure(
    db_url: str, tmp_path: Path
) -> None:
    """A child that dies as soon as it is replaced is no outage to wait out: past DEATHS_MAX
    deaths in the window the parent stops the rest and exits non-zero, for a supervisor."""
    proc = start_logged_worker(db_url, tmp_path, deaths_max=1)
    killed: set[int] = set()
    try:
        for _ in range(2):
            kid = new_child(proc, killed)
            os.kill(kid, signal.SIGKILL)
            killed.add(kid)
        assert proc.wait(timeout=WAIT_S) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
    log = (tmp_path / "worker.log").read_text()
    assert "2 deaths in 60 s: stopping the worker" in log


def test_a_childs_lines_name_its_lane_and_pid_and_why_it_ended(db_url: str, tmp_path: Path) -> None:
    """Two children wrote identical lines: none said which process it was. Each child's line
    now ends with worker=<lane>:<pid>, and "worker process done" says why it ended."""
    proc = start_logged_worker(db_url, tmp_path, deaths_max=5)
    kids: set[int] = set()
    try:
        (kid,) = kids = wait_for_children(proc, 1)
        time.sleep(1)  # its jobs started (a SIGTERM before its handler is set is no test)
        stop_and_check(proc, kids)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = (tmp_path / "worker.log").read_text().splitlines()
    done = [line for line in lines if "action=worker_done" in line]
    assert len(done) == 1
    assert f"worker process done (lane prompt, pid {kid}): stopped by SIGTERM" in done[0]
    assert done[0].endswith(f" worker=prompt:{kid}")
    started = [line for line in lines if "action=job_started" in line]  # the job's own line
    assert started and all(line.endswith(f" worker=prompt:{kid}") for line in started)
