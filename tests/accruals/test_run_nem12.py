"""The run's estimates file on a generated world (real PostgreSQL): valid NEM12 for our parser
and for nemreader, each 300 row with a QualityMethod of flag + 2-digit method, same bytes on a
re-run."""

from __future__ import annotations

import logging
import re
from datetime import date
from pathlib import Path

import numpy as np
import psycopg
import pytest
from nemreader import NEMFile

from tests.accruals.run_fixtures import generated_world, run_and_export
from tether.accruals.exports import NEM12, NEM12_QUALITY_METHOD
from tether.accruals.nem import parse
from tether.accruals.settings import AccrualsSettings

PE = date(2026, 11, 30)
SETTINGS = AccrualsSettings(chunk_size=8, min_contributors=3)
QUALITY_METHOD = re.compile(r"[AESFN]\d{2}")


@pytest.fixture
async def world(db_url: str, tmp_path: Path) -> str:
    """40 accounts over 3 months, a fifth of the meters' data stopping days before the end."""
    return await generated_world(db_url, tmp_path, PE)


def estimated_days(url: str) -> list[tuple[str, str, date, list[float]]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT nmi, suffix, day, vals FROM acc.run_estimated_day WHERE period_end = %s"
            " ORDER BY nmi, suffix, day",
            (PE,),
        ).fetchall()


async def test_every_300_row_carries_the_estimation_method(world: str) -> None:
    content = run_and_export(world, SETTINGS, PE)
    rows = [r.split(",") for r in content.decode().splitlines()]
    days = [r for r in rows if r[0] == "300"]
    assert len(days) == len(estimated_days(world)) > 10
    assert len({tuple(r[1:4]) for r in rows if r[0] == "200"}) > 3  # several channels
    width = 0
    for r in rows:
        if r[0] == "200":
            width = 1440 // int(r[8])
        elif r[0] == "300":
            assert len(r) == 2 + width + 5
            method = r[2 + width]
            assert QUALITY_METHOD.fullmatch(method) and method == NEM12_QUALITY_METHOD == "E55"


async def test_the_estimates_file_parses_with_our_parser_and_nemreader(
    world: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / NEM12
    path.write_bytes(run_and_export(world, SETTINGS, PE))
    expected = estimated_days(world)
    # ours: no error, every day an estimate of the chosen method, the values as stored
    ours = parse(path)
    assert ours.rejected is None and ours.errors == []
    got = sorted(
        (str(nmi), str(suffix), day.astype(date), str(qm), q.tobytes(), vals.tolist())
        for b in ours.channel_days
        for nmi, suffix, day, vals, qm, q in zip(
            b.nmi, b.suffix, b.day, b.values, b.quality_method, b.quality, strict=True
        )
    )
    assert [g[:3] for g in got] == [e[:3] for e in expected]
    assert {g[3:5] for g in got} == {(NEM12_QUALITY_METHOD, b"E" * 48)}
    assert np.allclose([g[5] for g in got], [e[3] for e in expected], atol=5e-4)
    # nemreader: reads it without a warning (it logs and skips what it cannot read)
    with caplog.at_level(logging.WARNING, logger="nemreader"):
        data = NEMFile(str(path), strict=True).nem_data()
    assert [r for r in caplog.records if r.name.startswith("nemreader")] == []
    assert data.header.version_header == "NEM12"
    readings = {
        (nmi, suffix): reads
        for nmi, channels in data.readings.items()
        for suffix, reads in channels.items()
    }
    assert sum(len(r) for r in readings.values()) == 48 * len(expected)
    for (nmi, suffix), reads in readings.items():
        mine = [v for n, s, _, v in expected if (n, s) == (nmi, suffix)]
        assert [r.quality_method for r in reads] == [NEM12_QUALITY_METHOD] * 48 * len(mine)
        assert np.allclose([r.read_value for r in reads], np.concatenate(mine), atol=5e-4)
        starts = {r.t_start.date() for r in reads}
        assert starts == {d for n, s, d, _ in expected if (n, s) == (nmi, suffix)}


async def test_a_rerun_writes_the_same_estimates_bytes(world: str) -> None:
    assert run_and_export(world, SETTINGS, PE) == run_and_export(world, SETTINGS, PE)
