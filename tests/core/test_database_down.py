"""Without the database, tether answers 503 quickly instead of hanging: the app reaches
PostgreSQL through a TCP relay the test can cut (refused connections) or turn into a black
hole (connections accepted, nothing answered)."""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import psycopg
import pytest

from tether.core.settings import Settings


class Relay:
    """A TCP relay to PostgreSQL with three modes: ``forward``, ``refuse`` and ``blackhole``.

    ``target`` is a (host, port) pair, or the path of a Unix socket (the embedded server); it
    listens on a local port, or on the Unix socket ``listen`` (removed by ``close``).
    """

    def __init__(self, target: tuple[str, int] | str, listen: str | None = None) -> None:
        self.target = target
        self.mode = "forward"
        if listen is None:
            self.listener = socket.create_server(("127.0.0.1", 0))
            self.port = self.listener.getsockname()[1]
        else:
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.listener.bind(listen)
            self.listener.listen()
        self.listen = listen
        self.open: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.open.append(client)
                if self.mode == "refuse":
                    client.close()
                    continue
                if self.mode == "blackhole":
                    continue  # held open, never answered
            upstream = self._connect()
            self.open.append(upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _connect(self) -> socket.socket:
        if isinstance(self.target, str):
            unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            unix.connect(self.target)
            return unix
        return socket.create_connection(self.target)

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def set(self, mode: str) -> None:
        """Switch mode; every open connection is dropped (the server "went away")."""
        with self.lock:
            self.mode = mode
            for s in self.open:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self.open.clear()

    def close(self) -> None:
        self.set("refuse")
        self.listener.close()
        if self.listen is not None:
            os.unlink(self.listen)  # as a server that stops removes its socket


def target(db_url: str) -> tuple[str, int] | str:
    info = psycopg.conninfo.conninfo_to_dict(db_url)
    host, port = str(info.get("host") or "/tmp"), int(info.get("port") or 5432)
    return f"{host}/.s.PGSQL.{port}" if host.startswith("/") else (host, port)


@pytest.fixture
def relayed(db_url: str) -> Iterator[tuple[Relay, str]]:
    info = psycopg.conninfo.conninfo_to_dict(db_url)
    relay = Relay(target(db_url))
    info.update(host="127.0.0.1", port=relay.port)
    yield relay, psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]
    relay.close()


@pytest.fixture
def api(
    settings: Settings, relayed: tuple[Relay, str], start_api: Any, db_url: str
) -> httpx.Client:
    _, url = relayed
    quick = settings.model_copy(update={"database_url": url, "db_pool_timeout_s": 0.5})
    client: httpx.Client = start_api(quick, database_url=url)
    return client


AP = "/api/v1/accounting-points/707057500000000001"


def test_health_and_requests_answer_503_when_the_database_refuses(
    api: httpx.Client, relayed: tuple[Relay, str]
) -> None:
    relay, _ = relayed
    assert api.get("/healthz").status_code == 200
    assert api.get(AP).status_code == 404
    relay.set("refuse")
    health = api.get("/healthz")
    assert health.status_code == 503
    assert health.json()["status"] == "unavailable" and "database" in health.json()["detail"]
    for _ in range(3):  # a broken pooled connection first, then no connection at all
        down = api.get(AP)
        assert down.status_code == 503, down.text
        assert down.json()["error"] == "DatabaseUnavailable"
    relay.set("forward")
    assert api.get("/healthz").status_code == 200


def test_health_gives_up_on_a_database_that_never_answers(
    api: httpx.Client, relayed: tuple[Relay, str]
) -> None:
    relay, _ = relayed
    relay.set("blackhole")
    # the client waits far longer than the health check's own deadline
    health = api.get("/healthz", timeout=httpx.Timeout(20))
    assert health.status_code == 503 and "no answer in time" in health.json()["detail"]
    down = api.get(AP, timeout=httpx.Timeout(20))  # the pool wait is bounded too
    assert down.status_code == 503 and down.json()["reason"] == "database_unavailable"


def test_after_a_restart_one_request_meets_a_dead_connection_not_one_per_pooled_one(
    api: httpx.Client, relayed: tuple[Relay, str]
) -> None:
    """Every pooled connection died with the server; each used to cost a client a 503 (the
    pool discards one only when it breaks in use). The first failure now checks them all."""
    relay, _ = relayed
    with ThreadPoolExecutor(8) as pool:  # concurrent requests: several pooled connections
        assert set(pool.map(lambda _: api.get(AP).status_code, range(32))) == {404}
    relay.set("forward")  # the server restarted: every open connection is gone, new ones work
    codes = [api.get(AP).status_code for _ in range(8)]
    assert codes.count(503) <= 2 and codes[-3:] == [404] * 3, codes


def test_metrics_and_the_console_say_the_database_is_unreachable(
    api: httpx.Client, relayed: tuple[Relay, str]
) -> None:
    """Without the database the scrape failed (a 503, as if tether were down) and the console
    showed "The source system is unavailable". Now ``tether_database_up 0``, a page naming
    the database, and a refresh fragment whose Service panel says so."""
    relay, _ = relayed
    up = api.get("/metrics")
    assert up.status_code == 200 and "\ntether_database_up 1.0\n" in up.text
    relay.set("refuse")
    for _ in range(2):  # a broken pooled connection first, then no connection at all
        down = api.get("/metrics")
        assert down.status_code == 200, down.text
        assert "\ntether_database_up 0.0\n" in down.text
        # the credential could not be checked: nothing else (process counters, panels)
        assert [line for line in down.text.splitlines() if not line.startswith("#")] == [
            "tether_database_up 0.0"
        ]
    page = api.get("/", headers={"accept": "text/html"})
    assert page.status_code == 503
    assert "<h1>Database unreachable</h1>" in page.text and "PostgreSQL" in page.text
    fragment = api.get("/console/panels", headers={"accept": "text/html", "hx-request": "true"})
    assert fragment.status_code == 503 and "<html" not in fragment.text
    assert 'aria-label="Service"' in fragment.text and 'data-status="bad"' in fragment.text
    assert "unreachable (" in fragment.text
    assert api.get("/metrics", headers={"authorization": ""}).status_code == 401  # no key
    relay.set("forward")
    deadline = time.monotonic() + 30  # the pool reconnects with its own backoff
    while "\ntether_database_up 1.0\n" not in (again := api.get("/metrics")).text:
        assert time.monotonic() < deadline, again.text
        time.sleep(0.2)
    assert "\ntether_database_up 1.0\n" in again.text and "tether_workers_alive 0.0" in again.text


def test_login_without_the_database_answers_503_before_trying_a_credential(
    api: httpx.Client, relayed: tuple[Relay, str]
) -> None:
    """Failed sign-ins are counted in the database: without it /login cannot tell whether the
    address is blocked, so it tries no credential (a guess at the events token got 401 then,
    uncounted) and says the database is down. No sign-in could succeed without it anyway: API
    keys and the session a sign-in starts live there."""
    relay, _ = relayed
    guess = {"token": "not-the-events-token", "next": "/"}
    page = {"accept": "text/html"}
    assert api.post("/login", data=guess, headers=page).status_code == 401
    relay.set("refuse")
    for _ in range(2):  # a broken pooled connection first, then no connection at all
        down = api.post("/login", data=guess, headers=page)
        assert down.status_code == 503, down.text
        assert "<h1>Database unreachable</h1>" in down.text
    assert api.post("/login", data=guess).json()["error"] == "DatabaseUnavailable"


def test_the_console_says_libpq_s_reason_and_healthz_only_its_kind(
    api: httpx.Client, relayed: tuple[Relay, str]
) -> None:
    """The page and the Service panel said ``PoolTimeout: couldn't get a connection``, and
    /healthz ``OperationalError``: the reason (refused, password, gone) only in the serve log.
    Now the console views give libpq's reason (without the address) and /healthz, open to
    anyone, its kind in a few words."""
    relay, _ = relayed
    assert api.get("/healthz").status_code == 200
    relay.set("refuse")  # accepted, then closed: libpq says the server closed it
    health = api.get("/healthz")
    assert health.status_code == 503
    assert health.json()["detail"] == "database: connection closed by the server"
    for _ in range(2):  # a broken pooled connection first, then no connection at all
        page = api.get("/", headers={"accept": "text/html"})
    assert page.status_code == 503 and "PoolTimeout" not in page.text
    assert "server closed the connection unexpectedly" in page.text
    assert str(relay.port) not in page.text  # libpq's address is left out
    fragment = api.get("/console/panels", headers={"accept": "text/html", "hx-request": "true"})
    assert "unreachable (server closed the connection unexpectedly" in fragment.text


def test_once_healthz_says_ready_after_a_long_outage_requests_succeed_too(
    api: httpx.Client, relayed: tuple[Relay, str]
) -> None:
    """After a 97 s outage /healthz said ready at once but requests failed for 18-40 s more:
    the pool slept through psycopg_pool's doubling reconnect backoff (1, 2, 4, 8, 16 s: the
    server came back in the 16 s one). Now its retries end after ``db.RECONNECT_S``, and a
    request that finds no connection then has the pool connect at once."""
    relay, _ = relayed
    assert api.get(AP).status_code == 404
    relay.set("refuse")
    cut = time.monotonic()
    while time.monotonic() < cut + 16:  # requests through the outage, as a client retries
        assert api.get(AP).status_code == 503
        time.sleep(0.5)
    relay.set("forward")
    while api.get("/healthz").status_code != 200:
        assert time.monotonic() < cut + 60
        time.sleep(0.2)
    ready = time.monotonic()
    while (answer := api.get(AP)).status_code != 404:
        assert time.monotonic() < ready + 5, answer.text
        time.sleep(0.2)


@pytest.fixture
def socket_dir() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="tether-sock-") as folder:  # a socket path: 107 B
        yield folder


def test_a_stopped_server_s_missing_socket_is_said_not_running(
    settings: Settings, db_url: str, start_api: Any, socket_dir: str
) -> None:
    """A stopped embedded server leaves no socket file: the console said "The database does
    not answer: No such file or directory" and /healthz "database: unreachable"."""
    folder = socket_dir
    relay = Relay(target(db_url), listen=f"{folder}/.s.PGSQL.5432")
    info = psycopg.conninfo.conninfo_to_dict(db_url)
    info.update(host=folder, port=5432)
    url = psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]
    quick = settings.model_copy(update={"database_url": url, "db_pool_timeout_s": 0.5})
    api: httpx.Client = start_api(quick, database_url=url)
    assert api.get("/healthz").status_code == 200
    relay.close()  # the server stopped: its socket is gone
    health = api.get("/healthz")
    assert health.status_code == 503 and health.json()["detail"] == "database: not running"
    for _ in range(2):  # a broken pooled connection first, then no connection at all
        page = api.get("/", headers={"accept": "text/html"})
    assert page.status_code == 503 and "No such file" not in page.text
    assert f"server not running (no socket at {folder})" in page.text
    fragment = api.get("/console/panels", headers={"accept": "text/html", "hx-request": "true"})
    assert f"unreachable (server not running (no socket at {folder}))" in fragment.text
