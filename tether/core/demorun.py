"""A running demo's files in its data dir, and whether the demo that wrote them still runs.

``tether demo`` drops and recreates its database: a second demo started on the same
``TETHER_DATA_DIR`` dropped the running one's (its admin key, its data, its DBOS tables) and
deleted its files on the way out. So a demo holds ``demo.lock`` (``flock``) for its whole life,
and another one that finds it held refuses before it touches anything. The kernel releases the
lock when its process ends, however it ends: a demo killed with SIGKILL blocks nobody, and the
files it could not remove (its database marker, its settings, its scratch folder) are told from
a running demo's by the lock, not by their presence.

The data dir is not all two demos can share: with ``DATABASE_URL`` both drop the same
``tether_demo`` on one server. So a demo also holds an advisory lock on that server, in its
``postgres`` database (advisory locks are per database), on a connection kept for its life: the
server releases it when the connection ends, a killed demo's included.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from tether.core.errors import ConfigurationError

logger = logging.getLogger(__name__)

SERVER_LOCK = (0x7E7E, 1)  # pg_try_advisory_lock(int, int): tether's demo on this server
LOCK = "demo.lock"  # held by the running demo; holds its pid, for the message of a second one
ACTIVE_DATABASE = "active-database"  # the database the running demo uses (embedded server)
ENV = "demo.env"  # the running demo's settings, for the CLI to source
SCRATCH = "demo-run"  # the running demo's own files (its NATS store, example messages)

#: A CLI command that found a killed demo's files holds the lock for as long as it takes to
#: remove them: a demo starting then waits this long before it believes another one runs.
_RETRY_S = 1.0


class DemoRunning(ConfigurationError):
    """Another demo runs on this data dir; this one would drop its database."""


@contextmanager
def hold(data_dir: Path) -> Iterator[None]:
    """This process's claim on ``data_dir`` as its demo, for the block; ``DemoRunning`` (one
    line: which pid, how to stop it) when another process holds it. Files a killed demo left
    are removed once the claim is taken, so nothing of the last run is taken for this one's."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o600)  # not inherited by children
    try:
        deadline = time.monotonic() + _RETRY_S
        while not _try_lock(fd, exclusive=True):
            if time.monotonic() >= deadline:
                raise DemoRunning(_refusal(data_dir, _pid(fd)))
            time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _remove(data_dir)
        try:
            yield
        finally:
            _remove(data_dir)  # whatever the run left behind
    finally:
        os.close(fd)  # releases the lock


def running_pid(data_dir: Path) -> int | None:
    """The pid of the demo running on ``data_dir``, None when none is (0: one is, its pid not
    written yet). Takes nothing: a shared lock probed and released at once."""
    try:
        fd = os.open(data_dir / LOCK, os.O_RDONLY)
    except OSError:  # never a demo here (or not ours to read)
        return None
    try:
        if _try_lock(fd, exclusive=False):
            return None
        return _pid(fd)
    finally:
        os.close(fd)


def set_active_database(data_dir: Path, dbname: str | None) -> None:
    """Point later processes using the embedded server at ``dbname`` (None: the default)."""
    marker = data_dir / ACTIVE_DATABASE
    if dbname is None:
        marker.unlink(missing_ok=True)
    else:
        data_dir.mkdir(parents=True, exist_ok=True)
        marker.write_text(dbname)


def active_database(data_dir: Path) -> str | None:
    """The database the demo running on ``data_dir`` uses, None when no demo runs there. A
    marker whose demo is gone (killed) is removed with its other files, said once, in a
    warning: it pointed ``tether status`` at "the running demo" long after it was killed."""
    marker = data_dir / ACTIVE_DATABASE
    if not marker.exists():
        return None
    if running_pid(data_dir) is None:
        _forget_killed(data_dir)
        return None
    try:
        return marker.read_text().strip() or None
    except FileNotFoundError:  # the demo stopped just now
        return None


def _forget_killed(data_dir: Path) -> None:
    """Remove a killed demo's files, holding the lock meanwhile: a demo starting at the same
    moment waits (``_RETRY_S``) rather than have its fresh files removed."""
    try:
        fd = os.open(data_dir / LOCK, os.O_RDWR)
    except OSError:
        return
    try:
        if not _try_lock(fd, exclusive=True):  # one started since: its files are not stale
            return
        removed = _remove(data_dir)
    finally:
        os.close(fd)
    if removed:
        logger.warning(
            "a demo that no longer runs (killed?) left %s in %s: removed; "
            "the commands use the embedded server's own database again",
            ", ".join(removed),
            data_dir.resolve(),
            extra={"action": "stale_demo_files"},
        )


def _remove(data_dir: Path) -> list[str]:
    """Remove the files of a demo that is over (caller holds the lock); their names."""
    removed = []
    for name in (ACTIVE_DATABASE, ENV):
        path = data_dir / name
        if path.exists():
            path.unlink(missing_ok=True)
            removed.append(name)
    scratch = data_dir / SCRATCH
    if scratch.exists():
        shutil.rmtree(scratch, ignore_errors=True)
        removed.append(f"{SCRATCH}/")
    return removed


def _try_lock(fd: int, *, exclusive: bool) -> bool:
    import fcntl  # POSIX only: loaded when a demo is looked for, not with the contract module

    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _pid(fd: int) -> int:
    """The pid the holder wrote; 0 when not written yet."""
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else 0


def _refusal(data_dir: Path, pid: int) -> str:
    who = f"a demo (pid {pid})" if pid else "a demo"
    stop = f"Ctrl-C in its terminal, or `kill {pid}`" if pid else "Ctrl-C in its terminal"
    return (
        f"{who} is running with TETHER_DATA_DIR={data_dir.resolve()}: starting another would "
        f"drop its database. Stop it first ({stop}), or give this one another TETHER_DATA_DIR"
    )


@contextmanager
def hold_server(server_url: str) -> Iterator[None]:
    """This process's claim on the database server of ``server_url`` as the one demo using it
    (its ``tether_demo``); ``DemoRunning`` naming the other demo's pid when it is taken."""
    me = f"tether demo pid {os.getpid()}"
    try:
        conn = psycopg.connect(_maintenance(server_url), autocommit=True, application_name=me)
    except psycopg.OperationalError:  # no postgres database to use: the one configured
        conn = psycopg.connect(server_url, autocommit=True, application_name=me)
    with conn:
        taken = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", SERVER_LOCK).fetchone()
        if not (taken and taken[0]):
            holder = conn.execute(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
                " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s"
                " AND l.objid = %s AND l.objsubid = 2",
                SERVER_LOCK,
            ).fetchone()
            pid = (holder[0] if holder else "").removeprefix("tether demo pid ")
            info = psycopg.conninfo.conninfo_to_dict(server_url)
            where = f"{info.get('host') or 'localhost'}:{info.get('port') or 5432}"
            raise DemoRunning(
                f"a demo{f' (pid {pid})' if pid.isdigit() else ''} is running on the database "
                f"server {where}: starting another would drop its database (tether_demo). "
                "Stop it first, or give this one another server (DATABASE_URL)"
            )
        yield


def _maintenance(url: str) -> str:
    """``url`` on the server's ``postgres`` database (where every demo takes the same lock)."""
    from tether.core.db import with_dbname  # db imports this module

    return with_dbname(url, "postgres")
