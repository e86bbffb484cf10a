"""The demo's settings file sends the CLI's accruals exports into the demo's data dir: the
guide's re-run, pasted in any folder, wrote ``./accruals-exports/`` there."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from tether.accruals.demo import demo
from tether.capabilities import CAPABILITIES
from tether.core.capability import DemoContext, DemoPart
from tether.core.settings import Settings
from tether.demo import demo_env, write_demo_env


async def _demo_env(data: Path) -> Path:
    """demo.env as ``tether demo`` writes it, with the accruals hook's settings."""
    settings = Settings(data_dir=data)  # type: ignore[call-arg]
    ctx = DemoContext(
        console=Console(file=io.StringIO()),
        api_url="http://127.0.0.1:1",
        core=settings,
        nats_url=None,
    )
    async with demo(ctx) as part:
        parts = [part if c.name == "accruals" else DemoPart() for c in CAPABILITIES]
        return write_demo_env(data, demo_env(settings, parts))


def test_demo_env_sets_the_export_dir_in_the_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env_file = asyncio.run(_demo_env(data))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    read = "from tether.accruals.settings import AccrualsSettings as S; print(S().export_dir)"
    sourced = subprocess.run(  # as the guide says: set -a; . demo.env; set +a
        ["bash", "-c", f"set -a; . {env_file}; set +a; {sys.executable} -c '{read}'"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=elsewhere,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert sourced.returncode == 0, sourced.stderr
    assert sourced.stdout.strip() == str((data / "accruals-exports").resolve())
