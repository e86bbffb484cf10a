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


def test_ruff_format_is_clean() -> None:
    result = _run("ruff", "format", "--check", "tether", "tests", "bench")
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


def _capability_packages() -> list[str]:
    from tether.capabilities import CAPABILITIES

    return [c.package.removeprefix("tether.") for c in CAPABILITIES]


def test_every_capability_package_is_registered() -> None:
    packages = {
        p.parent.name for p in (ROOT / "tether").glob("*/capability.py") if p.parent.name != "core"
    }
    assert packages == set(_capability_packages())


def test_every_part_a_capability_record_names_exists() -> None:
    """Records name their parts by ``Ref("module:attribute")``: a typo fails here, not in use."""
    import typer
    from fastapi import APIRouter

    from tether.capabilities import CAPABILITIES
    from tether.core.capability import Ref

    for c in CAPABILITIES:
        assert c.router is None or isinstance(c.router.load(), APIRouter), c.name
        assert c.cli is None or isinstance(c.cli.load(), typer.Typer), c.name
        parts = [c.build, c.demo, c.panel, *(j.run for j in c.jobs), *c.simulators.values()]
        for part in parts:
            assert not isinstance(part, Ref) or callable(part.load()), (c.name, part)


def test_core_imports_no_capability() -> None:
    names = "|".join(_capability_packages())
    capability = re.compile(rf"^\s*(from|import) tether\.({names})\b", re.M)
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "tether" / "core").rglob("*.py")
        if capability.search(p.read_text())
    ]
    assert offenders == []


def test_no_capability_is_named_in_core_or_a_generic_entrypoint() -> None:
    """core/ and the generic entrypoints iterate the capability list; they never name one."""
    from tether.capabilities import CAPABILITIES

    words = {c.name for c in CAPABILITIES} | set(_capability_packages())
    words |= {w for c in CAPABILITIES for s in c.simulators for w in (s,)}
    generic = [ROOT / "tether" / n for n in ("app.py", "cli.py", "worker.py", "demo.py")]
    files = [*generic, *(ROOT / "tether" / "core").rglob("*.py")]
    files += list((ROOT / "tether" / "core").rglob("*.sql"))
    offenders = []
    for path in files:
        text = path.read_text().lower()
        offenders += [
            f"{path.relative_to(ROOT)}: {word}"
            for word in sorted(words)
            if re.search(rf"(?<![a-z_-]){re.escape(word)}(?![a-z_-])", text)
        ]
    assert offenders == []


def test_capabilities_do_not_import_each_other() -> None:
    caps = _capability_packages()
    offenders = []
    for cap in caps:
        others = "|".join(c for c in caps if c != cap)
        pattern = re.compile(rf"^\s*(from|import) tether\.({others})\b", re.M)
        offenders += [
            str(p.relative_to(ROOT))
            for p in (ROOT / "tether" / cap).rglob("*.py")
            if pattern.search(p.read_text())
        ]
    assert offenders == []
