"""``tether demo`` with its port taken says which port the API moved to: it printed the new
URLs without a word, and a newcomer's bookmark of :8000 reached the other process. A simulator's
port (7001-7003, control 7101-7103) moved as silently: every capability's demo asks for its
ports through ``DemoContext.port``, which says so the same way."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest
from rich.console import Console

from tether.core.capability import DemoContext
from tether.core.settings import Settings
from tether.demo import api_port


def test_the_demo_says_its_port_was_in_use_and_where_the_api_went() -> None:
    said = io.StringIO()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        port = api_port(taken, Console(file=said, width=200))
    assert port != taken
    assert said.getvalue() == f"port {taken} is in use; the API listens on {port}\n"


def test_a_free_port_is_used_without_a_word() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    said = io.StringIO()
    assert api_port(free, Console(file=said)) == free
    assert said.getvalue() == ""


def test_a_simulator_whose_port_is_taken_says_where_it_listens_instead(tmp_path: Path) -> None:
    said = io.StringIO()
    ctx = DemoContext(
        console=Console(file=said, width=200),
        api_url="http://127.0.0.1:1",
        core=Settings(data_dir=tmp_path),  # type: ignore[call-arg]
        nats_url=None,
    )
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        port = ctx.port(taken, "the datahub simulator")
    assert port not in (taken, 0)  # a real port to print, not 0 for "any"
    assert said.getvalue() == f"port {taken} is in use; the datahub simulator listens on {port}\n"


def _time_wait_port() -> int:
    """A port with nothing listening and one TIME-WAIT connection: the server side of a
    connection closed first, as a stopped demo's API leaves its port (uvicorn listens with
    SO_REUSEADDR, which its connections keep into TIME-WAIT)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = int(listener.getsockname()[1])
        client = socket.create_connection(("127.0.0.1", port))
        served, _ = listener.accept()
        served.close()  # the server closes first: its end waits in TIME-WAIT
        client.recv(1)  # its FIN arrived
        client.close()
    return port


def test_a_port_with_only_time_wait_connections_is_free() -> None:
    port = _time_wait_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))  # what the probe without SO_REUSEADDR met
    said = io.StringIO()
    assert api_port(port, Console(file=said)) == port  # uvicorn binds it (SO_REUSEADDR)
    assert said.getvalue() == ""
