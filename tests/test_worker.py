"""``tether worker``: its processes stop with their parent, and ``--only`` picks capabilities."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tether import worker
from tether.core import workers
from tether.core.capability import Job, JobContext
from tether.core.jobs import default_worker_id

WAIT_S = 30.0


def stat_fields(pid: int | str) -> list[str]:
    """/proc/PID/stat after the command name (index 0 is field 3, the state); ``OSError`` when
    the process is gone. Read from /proc: no extra dependency."""
    return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()


def pids_where(index: int, value: int) -> set[int]:
    """Processes whose stat field at ``index`` (as ``stat_fields`` counts) is ``value``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(stat_fields(entry.name)[index]) == value:
                    found.add(int(entry.name))
            except OSError:
                continue
    return found


def children_of(pid: int) -> set[int]:
    """Direct children of ``pid`` (field 4 of stat: the parent pid)."""
    return pids_where(1, pid)


def alive(pid: int) -> bool:
    try:
        return stat_fields(pid)[0] != "Z"
    except OSError:
        return False


def start_worker(db_url: str, tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env.update(
        DATABASE_URL=db_url, TETHER_DATA_DIR=str(tmp_path / "data"), TETHER_LOG_LEVEL="WARNING"
    )
    return subprocess.Popen(
        [sys.executable, "-m", "tether", "worker", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a kill of the test's group never reaches it by accident
    )


def is_worker(pid: int) -> bool:
    """A worker process, forked (tether's command line) or spawned (multiprocessing's): not the
    resource tracker, a child too when spawning, nor the ``file`` that croniter's import runs
    (``platform.architecture``) in the parent, which looks like the parent until its exec."""
    try:
        cmdline = (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return False
    return b"resource_tracker" not in cmdline and (b"tether" in cmdline or b"spawn_main" in cmdline)


def wait_for_children(proc: subprocess.Popen[bytes], count: int) -> set[int]:
    """``count`` worker children of ``proc``. A child counts once it still looks like one 0.1 s
    after it was seen: a process the parent runs has the parent's command line from its fork
    until its exec, and was once taken for the worker."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        kids = {k for k in children_of(proc.pid) if alive(k) and is_worker(k)}
        if len(kids) >= count:
            time.sleep(0.1)
            kids = {k for k in kids if alive(k) and is_worker(k)}
        if len(kids) >= count:
            return kids
        assert proc.poll() is None, "the worker exited early"
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} child processes after {WAIT_S} s")


def wait_gone(pids: set[int]) -> set[int]:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)
    return {p for p in pids if alive(p)}


def application_names(db_url: str) -> set[str]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT DISTINCT application_name FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name LIKE 'tether worker%'"
        ).fetchall()
    return {r[0] for r in rows}


def reap(proc: subprocess.Popen[bytes], kids: Iterable[int] = ()) -> None:
    """A test's cleanup: the worker and any of ``kids`` still alive killed."""
    if proc.poll() is None:
        proc.kill()
    for pid in kids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def stop_and_check(proc: subprocess.Popen[bytes], kids: set[int]) -> None:
    """SIGTERM to the parent: it exits 0 and takes every child with it."""
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=WAIT_S) == 0
    assert wait_gone(kids) == set()


def test_sigterm_to_the_parent_stops_every_child(db_url: str, tmp_path: Path) -> None:
    proc = start_worker(db_url, tmp_path, "--processes", "2")
    try:
        kids = wait_for_children(proc, 2)
        for kid in kids:  # forked from the parent (its imports shared), not spawned
            assert (Path("/proc") / str(kid) / "cmdline").read_bytes().split(b"\0")[1:4] == [
                b"-m",
                b"tether",
                b"worker",
            ]
        stop_and_check(proc, kids)
    finally:
        if proc.poll() is None:
            proc.kill()


def worker_rows(db_url: str) -> list[tuple[int, str, list[str]]]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid, lane, jobs FROM tether.worker_process"
            " WHERE beat_at > now() - interval '30 seconds' ORDER BY pid"
        ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def test_each_worker_process_beats_while_it_runs_and_removes_its_row_when_stopped(
    db_url: str, tmp_path: Path
) -> None:
    """An operator could not see whether any worker ran: each process now has a row in
    tether.worker_process, beaten every few seconds, gone after a clean stop."""
    # two processes whose jobs run until stopped (without NATS the payments jobs end at once)
    proc = start_worker(db_url, tmp_path, "--processes", "2", "--only", "accounting-points")
    try:
        kids = wait_for_children(proc, 2)
        deadline = time.monotonic() + WAIT_S
        while {r[0] for r in worker_rows(db_url)} != kids and time.monotonic() < deadline:
            time.sleep(0.1)
        rows = worker_rows(db_url)
        assert {r[0] for r in rows} == kids
        assert [(r[1], sorted(r[2])) for r in rows] == [
            ("prompt", ["accounting-points.sync"])  # without NATS the events job ended
        ] * 2
        stop_and_check(proc, kids)
        assert worker_rows(db_url) == []
    finally:
        if proc.poll() is None:
            proc.kill()


async def test_a_beat_keeps_dead_workers_rows_to_show_then_prunes_them(
    pool: Any, db_url: str
) -> None:
    """A killed worker cannot delete its row: silent past DEAD_AFTER_S it is dead. Beats pruned
    it at that same 30 s, so it was gone before the console could show it "(dead)"; now it is
    kept DEAD_KEPT_S, shown as gone silent, and pruned after that by any live worker's beat."""
    from tether.core import db, health

    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO tether.worker_process VALUES ('gone:1', 'gone', 1, 'all', '{}',"
            " now() - interval '1 hour', now() - interval '11 minutes'),"
            " ('silent:3', 'silent', 3, 'all', '{a.b}', now(), now() - interval '40 seconds'),"
            " ('late:2', 'late', 2, 'all', '{}', now(), now() - interval '10 seconds')"
        )
    stop = asyncio.Event()
    beat = asyncio.create_task(workers.heartbeat(pool, lane="all", jobs=lambda: ["a.b"], stop=stop))
    ids: set[str] = set()
    for _ in range(100):
        await asyncio.sleep(0.05)
        with psycopg.connect(db_url, autocommit=True) as conn:
            ids = {r[0] for r in conn.execute("SELECT id FROM tether.worker_process")}
        if "gone:1" not in ids:
            break
    assert ids == {"late:2", "silent:3", default_worker_id()}  # dead for 40 s: still shown
    async with pool.connection() as conn:
        rows = await db.fetch_all(
            conn, workers.Q["worker_processes"], {"dead_after_s": workers.DEAD_AFTER_S, "limit": 9}
        )
    panel = health.build_panel(rows)
    assert [(r.label, r.value[:1]) for r in panel.rows[1:]] == [
        ("workers", "2"),  # this beat and late:2
        ("workers gone silent", "1"),
    ]
    assert panel.table is not None
    dead = [row for row in panel.table.rows if row[3].text.endswith("(dead)")]
    assert [row[0].text for row in dead] == ["silent:3"]
    stop.set()
    await beat
    with psycopg.connect(db_url, autocommit=True) as conn:
        ids = {r[0] for r in conn.execute("SELECT id FROM tether.worker_process")}
    assert ids == {"late:2", "silent:3"}


def in_session(sid: int) -> set[int]:
    """Live processes of session ``sid`` (the worker leads its own: every child it started);
    field 6 of stat: the session id."""
    return {p for p in pids_where(3, sid) if alive(p)}


def test_sigterm_while_the_children_start_stops_the_parent_and_them_all(
    db_url: str, tmp_path: Path
) -> None:
    """The parent's handler is set before the first child starts: a SIGTERM as soon as one
    exists (more still starting) ends the parent cleanly, not by the signal, and no child is
    left behind."""
    proc = start_worker(db_url, tmp_path, "--processes", "4")
    try:
        wait_for_children(proc, 1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=WAIT_S) == 0
        deadline = time.monotonic() + WAIT_S
        while in_session(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert in_session(proc.pid) == set()
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in in_session(proc.pid):
            os.kill(pid, signal.SIGKILL)


def test_children_stop_by_themselves_when_the_parent_is_killed(db_url: str, tmp_path: Path) -> None:
    proc = start_worker(db_url, tmp_path, "--processes", "2")
    kids: set[int] = set()
    try:
        kids = wait_for_children(proc, 2)
        proc.kill()  # kill -9: the parent cannot forward anything
        proc.wait(timeout=WAIT_S)
        assert wait_gone(kids) == set()
    finally:
        for pid in kids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_only_rejects_an_unknown_capability(db_url: str, tmp_path: Path) -> None:
    proc = start_worker(db_url, tmp_path, "--once", "--only", "no-such-thing")
    assert proc.wait(timeout=WAIT_S) == 2  # a usage error, before any process starts


@pytest.mark.parametrize("only", [[], ["--only", "accounting-points"]])
def test_once_returns_when_nothing_is_due(db_url: str, tmp_path: Path, only: list[str]) -> None:
    proc = start_worker(db_url, tmp_path, "--once", *only)
    assert proc.wait(timeout=WAIT_S * 2) == 0


def test_the_capability_list_imports_only_records_and_settings() -> None:
    """A worker process imports what its jobs need, when they start: loading the list imports no
    router, CLI, service or job of any capability, nor the web stack, numpy or the workflow
    library (seconds of start-up and tens of MB in every worker process)."""
    from tether.capabilities import CAPABILITIES

    code = "import sys, tether.worker; print('\\n'.join(sys.modules))"
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    parts = {m for m in loaded for c in CAPABILITIES if m.startswith(f"{c.package}.")}
    records = {f"{c.package}.{part}" for c in CAPABILITIES for part in ("capability", "settings")}
    assert parts == records
    assert loaded.isdisjoint({"fastapi", "starlette", "typer", "rich", "numpy", "dbos", "jinja2"})


def nice_of(pid: int) -> int:
    """Field 19 of stat: the process's nice value."""
    return int(stat_fields(pid)[16])


def test_deferred_jobs_get_processes_of_their_own_only_when_niced() -> None:
    from tether.core.settings import Settings
    from tether.worker import WorkerOptions, lanes, selected

    payments = WorkerOptions(only=("payments",))
    assert lanes(Settings(worker_deferred_nice=0), payments) == ["all"]
    assert lanes(Settings(worker_deferred_nice=10), payments) == ["prompt", "deferred"]
    # a capability without deferred jobs: one kind of process, at normal priority
    assert lanes(Settings(worker_deferred_nice=10), WorkerOptions(only=("accounting-points",))) == [
        "prompt"
    ]
    jobs = selected(payments)[0].jobs
    prompt = {j.name for j in jobs if WorkerOptions(lane="prompt").runs(j)}
    deferred = {j.name for j in jobs if WorkerOptions(lane="deferred").runs(j)}
    assert prompt == {"intake"}  # a sender waits on the intake only
    assert deferred == {j.name for j in jobs} - {"intake"}
    assert all(WorkerOptions().runs(j) for j in jobs)


def test_deferred_jobs_run_in_a_niced_process(db_url: str, nats_url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env.update(
        DATABASE_URL=db_url,
        TETHER_DATA_DIR=str(tmp_path / "data"),
        TETHER_LOG_LEVEL="WARNING",
        TETHER_NATS_URL=nats_url,
        TETHER_WORKER_DEFERRED_NICE="7",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "tether", "worker", "--only", "payments", "--processes", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        kids = wait_for_children(proc, 2)
        base = nice_of(proc.pid)
        expected = [base, min(19, base + 7)]
        deadline = time.monotonic() + WAIT_S  # a child exists before its first line runs
        while sorted(nice_of(k) for k in kids) != expected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(nice_of(k) for k in kids) == expected
        # each process's database sessions say which lane they serve (pg_stat_activity)
        want = {"tether worker prompt", "tether worker deferred"}
        while (seen := application_names(db_url)) != want and time.monotonic() < deadline:
            time.sleep(0.05)
        assert seen == want
        stop_and_check(proc, kids)
    finally:
        if proc.poll() is None:
            proc.kill()


async def test_a_failing_job_is_started_again_and_the_others_go_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """One job that fails (here twice) is logged and started again after a pause; it no longer
    takes the process's other jobs down with it, as a status too large for the broker once did
    to every payments job."""
    monkeypatch.setattr(worker, "RESTART_BASE_S", 0.01)
    runs: list[str] = []

    async def flaky(ctx: JobContext) -> None:
        runs.append("flaky")
        if runs.count("flaky") < 3:
            raise RuntimeError("boom")

    async def steady(ctx: JobContext) -> None:
        runs.append("steady")
        await ctx.stop.wait()

    stop = asyncio.Event()
    ctx = JobContext(runtime=None, service=None, stop=stop, once=False, worker_id="w")  # type: ignore[arg-type]
    other = asyncio.create_task(worker.supervised(Job(name="steady", run=steady), ctx, "t.steady"))
    with caplog.at_level(logging.INFO, logger=worker.logger.name):
        flaky_job = worker.supervised(Job(name="flaky", run=flaky), ctx, "t.flaky")
        await asyncio.wait_for(flaky_job, 10)
    assert runs.count("flaky") == 3 and not other.done()
    restarts = [r for r in caplog.records if r.getMessage().startswith("job t.flaky")]
    assert [getattr(r, "action", None) for r in restarts] == [
        "job_restarted",
        "job_still_failing",
        "job_recovered",  # it then ran to its end
    ]
    stop.set()
    await other


async def test_a_failing_job_with_once_fails_its_run() -> None:
    async def broken(ctx: JobContext) -> None:
        raise RuntimeError("boom")

    ctx = JobContext(runtime=None, service=None, stop=asyncio.Event(), once=True, worker_id="w")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="boom"):
        await worker.supervised(Job(name="broken", run=broken), ctx, "t.broken")
