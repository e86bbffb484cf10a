"""A simulator's listening sockets: binding them, and what a data port taken meanwhile means.

``down`` really closes the data port, so while it is down any process may take that port. Coming
back up is then impossible until it is free again: ``DataPortTaken`` says so, and the control
port answers it as a conflict rather than a 500 with a traceback in the log.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import uvicorn

from tether.core.errors import ConfigurationError


class DataPortTaken(Exception):
    """The data port, closed while ``down``, is held by another process now."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(
            f"the data port {host}:{port} was taken by another process while this simulator "
            "was down (which process, it cannot tell); it stays down: try again once the "
            "port is free"
        )


class Uncaptured(uvicorn.Server):
    """A server that leaves SIGINT and SIGTERM to its process (``serve_alone``): uvicorn's own
    capture made each of the two servers take the signal in turn and re-raise it, and a Ctrl-C
    could leave the process waiting for a stop that never came."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(host: str, port: int, option: str) -> socket.socket:
    """A port in use is a one-line error naming the option that moves it, not a traceback."""
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose
    # listener says so, and without it every keep-alive response waits ~40 ms (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(
            f"cannot listen on {host}:{port} ({exc.strerror}): another process uses it. "
            f"Stop it, or pick another port with {option}."
        ) from None
    sock.set_inheritable(True)
    return sock
