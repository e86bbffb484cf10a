"""The embedded NATS (the demo's, the tests') stops when tether stops it, not before: a Ctrl-C
reached it with the rest of the terminal's process group, it died first, and the demo's
consumers logged ``nats: unexpected EOF`` and ``Connection refused`` while shutting down."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

OWNER = """
import signal, sys, time
from pathlib import Path
from tether.core.natsserver import EmbeddedNats

signal.signal(signal.SIGINT, lambda *_: None)  # the owner's graceful stop: it carries on
nats = EmbeddedNats(Path(sys.argv[1]))
print(nats.proc.pid, flush=True)
with nats:
    sys.stdin.readline()  # told that the Ctrl-C was sent
    time.sleep(0.5)
    print("running" if nats.proc.poll() is None else "dead", flush=True)
"""

FORGETFUL = """
import sys
from pathlib import Path
from tether.core.natsserver import EmbeddedNats

nats = EmbeddedNats(Path(sys.argv[1]))
print(nats.proc.pid, flush=True)
raise SystemExit(3)  # an error on the way: nobody called stop()
"""


def _gone(pid: int) -> bool:
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)  # leave no server behind, whatever the test says
    return False


def _owner(script: str, store: Path) -> tuple[subprocess.Popen[str], int]:
    owner = subprocess.Popen(
        [sys.executable, "-c", script, str(store)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    assert owner.stdout is not None
    return owner, int(owner.stdout.readline())


def test_a_ctrl_c_to_the_owner_s_process_group_leaves_nats_to_the_owner(
    private_dir: Path,
) -> None:
    owner, nats_pid = _owner(OWNER, private_dir / "nats")
    assert owner.stdin is not None and owner.stdout is not None
    try:
        os.killpg(owner.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        owner.stdin.write("sent\n")
        owner.stdin.flush()
        assert owner.stdout.readline().strip() == "running"
        assert owner.wait(timeout=30) == 0
    finally:
        if owner.poll() is None:
            owner.kill()
        stopped = _gone(nats_pid)
    assert stopped, "the owner's stop did not stop nats-server"


def test_an_owner_that_exits_without_stopping_it_still_stops_nats(private_dir: Path) -> None:
    """In its own session nothing else stops the server: exiting does, even on an error."""
    owner, nats_pid = _owner(FORGETFUL, private_dir / "nats")
    assert owner.wait(timeout=30) == 3
    assert _gone(nats_pid), "nats-server outlived the process that started it"
