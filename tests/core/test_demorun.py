"""A demo's claim on its data dir (``demorun``): another process's demo is refused with its pid
while it runs; once it is killed with SIGKILL the kernel has released the claim, and the files it
left (database marker, settings, scratch folder) are taken for a killed demo's, not a running
one's: they pointed ``tether status`` at "the running demo" long after it died."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tether.core import demorun
from tether.core.capability import scratch_folder

HOLDER = """
import sys, time
from pathlib import Path
from tether.core import demorun, capability
data = Path(sys.argv[1])
with demorun.hold(data):
    demorun.set_active_database(data, "tether_demo")
    (data / demorun.ENV).write_text("TETHER_EVENTS_TOKEN=x\\n")
    (capability.scratch_folder(data, "nats") / "store").write_text("x")
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding ``tmp_path/data`` as a running demo does."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "data")], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_a_second_demo_is_refused_while_one_runs_and_not_after_it_was_killed(
    tmp_path: Path, holder: subprocess.Popen[str], caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    assert demorun.running_pid(data) == holder.pid
    assert demorun.active_database(data) == "tether_demo"  # the running demo's
    with pytest.raises(demorun.DemoRunning) as refused, demorun.hold(data):
        pytest.fail("a second demo got the data dir")
    message = refused.value.message
    assert f"a demo (pid {holder.pid}) is running with TETHER_DATA_DIR={data}" in message
    assert f"kill {holder.pid}" in message and "\n" not in message
    assert (data / demorun.ENV).exists()  # the refused one removed none of the running one's

    holder.send_signal(signal.SIGKILL)  # no cleanup runs: the files stay
    holder.wait()
    assert (data / demorun.ACTIVE_DATABASE).exists() and (data / demorun.SCRATCH).exists()
    assert demorun.running_pid(data) is None  # the kernel released the claim
    with caplog.at_level(logging.WARNING, logger="tether.core.demorun"):
        assert demorun.active_database(data) is None
        assert demorun.active_database(data) is None
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "no longer runs (killed?)" in said[0], said  # once
    for name in (demorun.ACTIVE_DATABASE, demorun.ENV, demorun.SCRATCH):
        assert not (data / name).exists(), name
    with demorun.hold(data):  # the next demo starts
        assert demorun.running_pid(data) == os.getpid()


def test_a_demo_that_starts_removes_what_a_killed_one_left(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (scratch_folder(data, "nats") / "store").write_text("a killed run's")
    demorun.set_active_database(data, "tether_demo")
    with demorun.hold(data):
        assert demorun.active_database(data) is None
        assert not (data / demorun.SCRATCH).exists()
        assert (scratch_folder(data, "payments")).is_dir()
    assert not (data / demorun.SCRATCH).exists()  # nor what this run left
    assert demorun.running_pid(data) is None


def test_no_demo_ever_ran_here(tmp_path: Path) -> None:
    assert demorun.running_pid(tmp_path / "never") is None
    assert demorun.active_database(tmp_path / "never") is None
