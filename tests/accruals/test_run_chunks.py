"""The chunk size changes no figure (real PostgreSQL, a generated world): it is a knob of the
process that prepares a run, so a run's files must not depend on it."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest

from tests.accruals.run_fixtures import generated_world, stored_export
from tether.accruals import run
from tether.accruals.exports import LINES, NEM12, SUMMARY
from tether.accruals.settings import AccrualsSettings

PE = date(2026, 11, 30)
AS_AT = datetime(2026, 12, 2, tzinfo=run.AEST)


@pytest.fixture
async def world(db_url: str, tmp_path: Path) -> str:
    return await generated_world(db_url, tmp_path, PE)


def test_the_chunk_size_changes_no_figure(world: str) -> None:
    """An account's rows before its own window (a chunk's day axis starts at the chunk's
    earliest window) once labelled it `distributor` and counted its kind as read: its estimate
    method followed the accounts it shared a chunk with."""
    out = []
    for attempt, size in enumerate((3, 2000), start=1):
        settings = AccrualsSettings(min_contributors=3, chunk_size=size)  # type: ignore[call-arg]
        run.run_inline(world, PE, AS_AT, settings, attempt=attempt)
        out.append({name: stored_export(world, name, PE) for name in (SUMMARY, LINES, NEM12)})
    assert out[0] == out[1]
