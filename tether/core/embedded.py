"""The embedded PostgreSQL (pgserver): started or joined one process of the machine at a time,
tuned on each start, stopped by ``tether db stop``. ``db`` resolves the URL that uses it."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from tether.core.errors import ConfigurationError

logger = logging.getLogger(__name__)

EMBEDDED_LOCK = Path(tempfile.gettempdir()) / "tether-pgserver.lock"  # one machine, one starter


def embedded_server(pgdata: Path, *, cleanup_mode: str | None) -> Any:
    """pgserver's server in ``pgdata`` (started, or joined), one process of the machine at a time.

    Run as root, pgserver creates an OS user for the server with ``useradd`` on first use and
    runs initdb as that user. The first fresh-clone test run on a machine here, three xdist
    workers starting servers at once, lost one worker: its initdb ran as a user id that no
    longer existed. Taking turns, one starter creates the user and the others find it."""
    import pgserver  # imported here: only the embedded mode needs it

    with _machine_lock():
        server = pgserver.get_server(str(pgdata), cleanup_mode=cleanup_mode)  # type: ignore[attr-defined]
        tune_embedded(server.get_uri())
        return server


# Set on the embedded server only; a server of your own is its DBA's (docs/operators.md).
# wal_init_zero: a new 16 MB WAL segment is otherwise zero-filled and fsynced by the backend whose
# commit first reaches it, about 50 ms. An intake writing 17 MB of WAL a second (1,000 messages/s
# in bench/RESULTS.md) stalled that long every second, which was its whole p99 (60 ms, 36 off).
# A server in service mostly recycles old segments instead, so this bites a new one.
EMBEDDED_SETTINGS: dict[str, str] = {"wal_init_zero": "off"}


def tune_embedded(url: str) -> None:
    """Apply ``EMBEDDED_SETTINGS`` that differ (``ALTER SYSTEM``, then a reload): each is
    reloadable, and a started server keeps them in its own folder."""
    with psycopg.connect(url, autocommit=True) as conn:
        changed = False
        for name, value in EMBEDDED_SETTINGS.items():
            row = conn.execute("SELECT current_setting(%s)", (name,)).fetchone()
            if row is None or row[0] != value:
                conn.execute(
                    sql.SQL("ALTER SYSTEM SET {} = {}").format(
                        sql.Identifier(name), sql.Literal(value)
                    )
                )
                changed = True
        if changed:
            conn.execute("SELECT pg_reload_conf()")


@contextmanager
def _machine_lock() -> Iterator[None]:
    """``EMBEDDED_LOCK``, held exclusively. Opened read-only, so a lock file another user made
    (root's tests, say) serves everyone; where it cannot be opened, or there is no fcntl
    (Windows: no useradd either), starters go without it."""
    try:
        import fcntl

        fd = os.open(EMBEDDED_LOCK, os.O_RDONLY | os.O_CREAT, 0o644)
    except (ImportError, OSError) as exc:
        logger.debug("starting the embedded server without the machine lock: %s", exc)
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or join) the embedded PostgreSQL kept in ``data_dir``; return its URL.

    The server outlives this process on purpose: workers started later join the same server.
    Only a start is logged at INFO: a process that joined one had started nothing to stop.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    was_running = running_server(data_dir) is not None
    server = embedded_server(data_dir.resolve() / "pgdata", cleanup_mode=None)
    uri: str = server.get_uri()
    if was_running:
        logger.debug("joined the running embedded postgres in %s", data_dir.resolve())
    else:
        logger.info(
            "embedded postgres started in %s (`tether db stop` stops it)",
            data_dir.resolve(),
            extra={"action": "embedded_pg_started"},
        )
    return uri


def running_server(data_dir: Path) -> Any:
    """pgserver's record of the embedded server of ``data_dir`` when it runs and is ready."""
    from pgserver.utils import PostmasterInfo

    try:
        info = PostmasterInfo.read_from_pgdata(data_dir.resolve() / "pgdata")
    except (OSError, ValueError, AssertionError):  # unreadable, or still being written
        return None
    ready = info is not None and info.is_running() and info.status == "ready"
    return info if ready else None


def stop_embedded_postgres(data_dir: Path) -> bool:
    """Stop the embedded server kept in ``data_dir``; False when it was not running."""
    import subprocess

    from pgserver import pg_ctl  # type: ignore[attr-defined]

    pgdata = data_dir.resolve() / "pgdata"
    if not (pgdata / "postmaster.pid").exists():
        return False
    user = "pgserver" if hasattr(os, "geteuid") and os.geteuid() == 0 else None
    try:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    except subprocess.CalledProcessError as exc:
        raise ConfigurationError(
            f"could not stop the embedded PostgreSQL in {pgdata}: {exc}"
        ) from None
    (pgdata / ".handle_pids.json").unlink(missing_ok=True)
    return True
