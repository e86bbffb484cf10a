"""ruff and mypy are part of the test suite, so the one test command checks them too."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_ruff_is_clean() -> None:
    result = _run("ruff", "check", "tether", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean() -> None:
    result = _run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_environment_is_read_only_in_settings() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "tether").rglob("*.py")
        if path.name != "settings.py" and re.search(r"os\.environ|getenv", path.read_text())
    ]
    assert offenders == []


def test_core_imports_no_capability() -> None:
    capability = re.compile(r"^\s*(from|import) tether\.(accountingpoints|elicensing)", re.M)
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "tether" / "core").rglob("*.py")
        if capability.search(p.read_text())
    ]
    assert offenders == []


def test_capabilities_do_not_import_each_other() -> None:
    caps = ["accountingpoints", "elicensing"]
    offenders = []
    for cap in caps:
        others = "|".join(c for c in caps if c != cap)
        pattern = re.compile(rf"^\s*(from|import) tether\.({others})", re.M)
        offenders += [
            str(p.relative_to(ROOT))
            for p in (ROOT / "tether" / cap).rglob("*.py")
            if pattern.search(p.read_text())
        ]
    assert offenders == []
