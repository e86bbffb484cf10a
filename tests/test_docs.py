"""The README documents what exists: every setting, and the quick start CI runs."""

from __future__ import annotations

from pathlib import Path

from tether.core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [
        name
        for name in Settings.model_fields
        if ("DATABASE_URL" if name == "database_url" else f"TETHER_{name.upper()}") not in readme
    ]
    assert missing == []


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = "pip install uv && uv run --locked pytest"
    assert command in readme
    assert ci.strip().splitlines()[-1].endswith(command)


def test_every_dependency_is_justified() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = project["project"]["dependencies"] + project["dependency-groups"]["dev"]
    names = {d.split("[")[0].split("=")[0].split(">")[0].split("<")[0].strip() for d in deps}
    doc = (ROOT / "docs" / "dependencies.md").read_text()
    assert sorted(n for n in names if f"**{n}**" not in doc) == []
