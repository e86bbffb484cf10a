"""``tether demo`` with its port taken says which port the API moved to: it printed the new
URLs without a word, and a newcomer's bookmark of :8000 reached the other process."""

from __future__ import annotations

import io
import socket

from rich.console import Console

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
