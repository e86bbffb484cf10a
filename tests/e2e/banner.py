"""What a starting ``tether demo`` prints: read until its banner is complete, values picked out."""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

PATTERNS = {
    "api": r"API docs\s+(http://127\.0\.0\.1:\d+)/docs",
    "gsrn": r"accounting-points/(\d{18})/history",
    "key": r"Admin API key\s+(tth_\S+)",
    "env_file": r"CLI settings\s+set -a; \. (\S+); set \+a",
}


@dataclass
class Banner:
    values: dict[str, str] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def env_file(self) -> Path | None:
        return Path(self.values["env_file"]) if "env_file" in self.values else None


def read_banner(proc: subprocess.Popen[str], timeout_s: float) -> Banner:
    """The demo's output until it says how to stop it (or ends, or ``timeout_s`` passes); a
    caller asserts on the values it needs, with ``text`` as the message."""
    assert proc.stdout is not None
    banner = Banner()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        banner.lines.append(line)
        for name, pattern in PATTERNS.items():
            if m := re.search(pattern, line):
                banner.values[name] = m.group(1)
        if "Ctrl-C stops everything." in line:
            break
    return banner
