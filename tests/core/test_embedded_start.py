"""Starting the embedded PostgreSQL: one process of the machine at a time."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tether.core import embedded


def test_embedded_server_waits_for_the_machine_wide_lock(private_dir: Path) -> None:
    # run as root, pgserver creates its OS user on first use; starters take turns, so one
    # creates it and the others find it
    started: list[Any] = []
    # opened as the product opens it (read-only): a lock file root made serves any user
    with open(os.open(embedded.EMBEDDED_LOCK, os.O_RDONLY | os.O_CREAT, 0o644)) as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another starter holds the lock
        starter = threading.Thread(
            target=lambda: started.append(
                embedded.embedded_server(private_dir / "data", cleanup_mode="delete")
            )
        )
        starter.start()
        starter.join(timeout=1.0)
        assert starter.is_alive() and not started  # waiting for its turn
    starter.join(timeout=60)  # the lock was released with the file
    assert len(started) == 1
    server = started[0]
    try:
        with psycopg.connect(server.get_uri()) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        server.cleanup()


def test_embedded_server_starts_without_the_lock_where_it_cannot_be_opened(
    private_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedded, "EMBEDDED_LOCK", private_dir / "no-such-folder" / "lock")
    server = embedded.embedded_server(private_dir / "data", cleanup_mode="delete")
    try:
        with psycopg.connect(server.get_uri()) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        server.cleanup()
    assert not (private_dir / "no-such-folder").exists()


def test_embedded_server_does_not_zero_fill_new_wal_segments(private_dir: Path) -> None:
    # a new segment zero-filled and fsynced inside a commit stalled the payments intake for
    # about 50 ms every 16 MB of WAL; the setting lasts over a restart of the same folder
    server = embedded.embedded_server(private_dir / "data", cleanup_mode="stop")
    try:
        assert _setting(server.get_uri(), "wal_init_zero") == "off"
    finally:
        server.cleanup()
    again = embedded.embedded_server(private_dir / "data", cleanup_mode="delete")
    try:
        with psycopg.connect(again.get_uri()) as conn:
            row = conn.execute(
                "SELECT setting, source FROM pg_settings WHERE name = 'wal_init_zero'"
            ).fetchone()
        assert row == ("off", "configuration file")
    finally:
        again.cleanup()


def _setting(url: str, name: str) -> str:
    """The setting as a new session sees it, once the server has read its reloaded files."""
    deadline = time.monotonic() + 10
    while True:
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT current_setting(%s)", (name,)).fetchone()
        assert row is not None
        if row[0] == "off" or time.monotonic() > deadline:
            return str(row[0])
        time.sleep(0.05)
