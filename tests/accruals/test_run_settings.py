"""A run's figures are its own, not those of the process that runs a step (real PostgreSQL).

The settings that change figures are fixed when a run is submitted, stored with it and used by
every executor; a re-run reuses them. The chunk size changes no figure (test_run_chunks.py), so
it is not fixed.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import psycopg
import pytest

from tests.accruals.run_fixtures import generated_world, stored_export
from tether.accruals import flow, run
from tether.accruals.exports import LINES, NEM12, SUMMARY
from tether.accruals.settings import RUN_FIELDS, AccrualsSettings
from tether.core import workflows

PE = date(2026, 11, 30)
AS_AT = datetime(2026, 12, 2, tzinfo=run.AEST)
MINE = AccrualsSettings(min_contributors=3, chunk_size=4, schedule="")  # type: ignore[call-arg]


@pytest.fixture
async def world(db_url: str, tmp_path: Path) -> str:
    return await generated_world(db_url, tmp_path, PE)


def files(url: str) -> dict[str, bytes]:
    return {name: stored_export(url, name, PE) for name in (SUMMARY, LINES, NEM12)}


def stored(url: str) -> tuple[int, dict[str, object]]:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT attempt, settings FROM acc.run WHERE period_end = %s", (PE,))
        found = row.fetchone()
    assert found is not None
    return found[0], found[1]


def test_a_rerun_by_an_executor_with_other_settings_gives_the_same_bytes(world: str) -> None:
    run.run_inline(world, PE, AS_AT, MINE)
    ref = files(world)
    assert stored(world) == (1, {k: getattr(MINE, k) for k in RUN_FIELDS})
    defaults = AccrualsSettings(schedule="")  # type: ignore[call-arg]
    assert defaults.min_contributors != MINE.min_contributors
    flow.start_executor(world, defaults, "test-other-settings")
    try:
        wid = flow.submit(world, defaults, PE, None)  # as at the stored as-at, with its settings
        workflows.result(wid)
        assert stored(world) == (2, MINE.run_settings()) and files(world) == ref
        # an operator who wants the new settings says so: its figures may differ
        wid = flow.submit(world, defaults, PE, None, new_settings=True)
        workflows.result(wid)
    finally:
        workflows.shutdown()
    assert stored(world) == (3, defaults.run_settings())
    assert files(world)[SUMMARY] != ref[SUMMARY]  # 40 accounts: thin segments fall back more


def test_settings_of_a_run_override_only_the_figure_settings() -> None:
    mine = AccrualsSettings(chunk_size=9, min_contributors=2)  # type: ignore[call-arg]
    own = AccrualsSettings(chunk_size=5, min_contributors=40)  # type: ignore[call-arg]
    theirs = own.for_run(mine.run_settings())
    assert (theirs.min_contributors, theirs.chunk_size) == (2, 5)
    assert AccrualsSettings().for_run(None) == AccrualsSettings()
