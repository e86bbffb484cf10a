"""Debian's Chromium for the browser tests: installed on demand, never skipped."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def ensure_chromium() -> Path:
    """Return the Chromium binary, installing Debian's package first when it is missing.

    The suite runs in several processes: one installs while the others wait on a file lock
    (two apt-get runs at once would fail on dpkg's own lock)."""
    if CHROMIUM.exists():
        return CHROMIUM
    with open("/tmp/tether-test-chromium.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not CHROMIUM.exists():
            _install()
    return CHROMIUM


def _install() -> None:
    apt = shutil.which("apt-get")
    if apt is None:
        raise RuntimeError("chromium is missing and apt-get is not available to install it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in ([apt, "update"], [apt, "install", "-y", "--no-install-recommends", "chromium"]):
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
            )
    if not CHROMIUM.exists():
        raise RuntimeError("apt-get installed chromium but /usr/bin/chromium is still missing")


if __name__ == "__main__":
    print(ensure_chromium())
