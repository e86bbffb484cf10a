"""Shared fixtures: a real PostgreSQL (embedded unless TETHER_TEST_DATABASE_URL is set), and a
fresh database per test cloned from a migrated template, as procrastinate's tests do."""

from __future__ import annotations

import asyncio
import fcntl
import os
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from psycopg_pool import AsyncConnectionPool

from tether.capabilities import migration_components
from tether.core import db, embedded, keys, migrations
from tether.core.settings import Settings

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(autouse=True)
def _one_of_its_group_at_a_time(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Tests marked ``xdist_group(name)`` (the demos: one data dir, one database, the same
    simulator ports) run one at a time across the xdist workers. ``--dist loadgroup`` was meant
    to put them in one worker, but with pytest 9.2 it no longer does (pytest-xdist issue 1386:
    its nodeid suffix is ignored), so two demos ran at once; an flock on a file in the session's
    shared temp dir serialises them whichever workers they land on."""
    mark = request.node.get_closest_marker("xdist_group")
    if mark is None:
        yield
        return
    name = mark.args[0] if mark.args else mark.kwargs.get("name", "default")
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # each worker's basetemp is a folder of the session's
    with open(shared / f"xdist-group-{name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        yield


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("TETHER_") and key != "TETHER_TEST_DATABASE_URL":
            monkeypatch.delenv(key)
    monkeypatch.delenv("DATABASE_URL", raising=False)


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """A PostgreSQL server: the one in TETHER_TEST_DATABASE_URL, else an embedded one.

    The embedded server's folder is not under pytest's temporary root: pytest keeps only its
    last three roots, so another test session on the machine would delete a running server's
    files.
    """
    url = os.environ.get("TETHER_TEST_DATABASE_URL")
    if url:
        yield url
        return
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="tether-test-pg-"))
    server = embedded.embedded_server(folder / "data", cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def private_dir() -> Iterator[Path]:
    """A folder outside pytest's temporary root, for a server a test starts (an embedded
    PostgreSQL runs as another user when tests run as root): another test session on the
    machine rotates that root, deleting old folders and closing its permissions."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="tether-test-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def template_db(server_url: str) -> Iterator[str]:
    name = f"tether_tpl_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    migrations.upgrade(db.with_dbname(server_url, name), migration_components())
    yield name
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db_url(server_url: str, template_db: str) -> Iterator[str]:
    """URL of a fresh, fully migrated database for this test only."""
    name = f"tether_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    yield db.with_dbname(server_url, name)
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def empty_db_url(server_url: str) -> Iterator[str]:
    """URL of an empty database (no migrations)."""
    name = f"tether_e_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield db.with_dbname(server_url, name)
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[AsyncConnectionPool[Any]]:
    p = db.make_pool(db_url, min_size=1, max_size=8)
    await p.open(wait=True)
    yield p
    await p.close()


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=db_url, data_dir=tmp_path / "data")  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    """A private NATS server with JetStream on a free port (never the machine's one on 4222),
    its store outside pytest's temporary root for the reason given at ``server_url``."""
    import shutil
    import tempfile

    from tether.core.natsserver import EmbeddedNats

    store = Path(tempfile.mkdtemp(prefix="tether-test-nats-"))
    server = EmbeddedNats(store)
    try:
        yield server.url
    finally:
        server.stop()
        shutil.rmtree(store, ignore_errors=True)


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[Any]:
    """A JetStream context on the session's NATS server, drained after the test."""
    import nats

    nc = await nats.connect(nats_url)
    yield nc.jetstream()
    await nc.drain()


# --- credentials and a served app ---------------------------------------------------------------


@pytest.fixture
def admin_key(db_url: str) -> str:
    """The secret of an API key with scope ``admin`` in this test's database."""
    _, secret = keys.create(db_url, "test admin", ["admin"])
    return secret


@pytest.fixture
def auth_headers(admin_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {admin_key}"}


class ApiServer:
    """The whole tether app under uvicorn on a background thread, lifespan included."""

    def __init__(
        self, settings: Settings, db_url: str, overrides: Sequence[Any] = (), **options: Any
    ) -> None:
        from tether.app import create_app

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(
            create_app(settings, database_url=db_url, overrides=overrides),
            lifespan="on",
            log_level="warning",
            access_log=False,
            **options,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=asyncio.run, args=(self.server.serve(sockets=[self.sock]),), daemon=True
        )

    def start(self) -> ApiServer:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the API did not start")
            self.thread.join(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


StartApi = Callable[..., httpx.Client]


@pytest.fixture
def start_api(db_url: str, auth_headers: dict[str, str]) -> Iterator[StartApi]:
    """``start_api(settings, overrides=[capability settings], **uvicorn_options)``: the app on
    a real socket, and a client sending the admin key (``client.base_url`` reaches it without
    credentials too)."""
    servers: list[ApiServer] = []
    clients: list[httpx.Client] = []

    def start(
        settings: Settings,
        database_url: str | None = None,
        overrides: Sequence[Any] = (),
        **options: Any,
    ) -> httpx.Client:
        server = ApiServer(settings, database_url or db_url, overrides, **options).start()
        servers.append(server)
        client = httpx.Client(base_url=server.url, timeout=10, headers=auth_headers)
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.close()
    for server in servers:
        server.stop()
