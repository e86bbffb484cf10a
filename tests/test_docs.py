"""The README documents what exists: every setting, and the quick start CI runs."""

from __future__ import annotations

from pathlib import Path

from tether.core.settings import Settings, SimulatorSettings

ROOT = Path(__file__).resolve().parents[1]


def _env_names() -> list[str]:
    from tether.capabilities import CAPABILITIES

    names = []
    for cls in [Settings, SimulatorSettings, *(c.settings for c in CAPABILITIES)]:
        prefix = str(cls.model_config.get("env_prefix", ""))
        for name, field in cls.model_fields.items():
            alias = field.validation_alias
            names.append(alias if isinstance(alias, str) else f"{prefix}{name}".upper())
    return names


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    assert [name for name in _env_names() if f"`{name}`" not in readme] == []


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
