"""The embedded NATS (the demo's, the tests') stops when tether stops it, not before: a Ctrl-C
reached it with the rest of the terminal's process group, it died first, and the demo's
consumers logged ``nats: unexpected EOF`` and ``Connection refused`` while shutting down. Nor
after: a tether killed with SIGKILL left it running, in its own session."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

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

# started from the main thread or from a thread that ends at once (PR_SET_PDEATHSIG fires when
# the thread that forked ends), with the kernel's signal or with the watchdog of other systems
KILLED = """
import sys, threading, time
from pathlib import Path
from tether.core import natsserver

natsserver.PDEATHSIG = sys.argv[3] == "pdeathsig"
servers = []
start = lambda: servers.append(natsserver.EmbeddedNats(Path(sys.argv[1])))
if sys.argv[2] == "thread":
    helper = threading.Thread(target=start)
    helper.start()
    helper.join()
    time.sleep(0.5)  # a signal for the helper's end would have come by now
else:
    start()
nats = servers[0]
print(nats.proc.pid, "running" if nats.proc.poll() is None else "dead", flush=True)
time.sleep(600)
"""


def _gone(pid: int) -> bool:
    for _ in range(200):
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


@pytest.mark.parametrize(
    ("starter", "guard"),
    [("main", "pdeathsig"), ("thread", "pdeathsig"), ("main", "watchdog")],
)
def test_nats_dies_with_an_owner_killed_by_sigkill(
    private_dir: Path, starter: str, guard: str
) -> None:
    if guard == "pdeathsig" and not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux's")
    owner = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(private_dir / "nats"), starter, guard],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert owner.stdout is not None
    try:
        pid, state = owner.stdout.readline().split()
        assert state == "running", "nats-server died with the thread that started it"
    finally:
        owner.kill()  # SIGKILL: no finalizer, no atexit
        owner.wait()
    assert _gone(int(pid)), "nats-server outlived the process killed with SIGKILL"
