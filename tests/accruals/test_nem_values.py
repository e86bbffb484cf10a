"""Interval value text -> float: the numpy path gives exactly ``float(text)``, or steps aside."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest

from tether.accruals.generator import generate
from tether.accruals.nem import parse
from tether.accruals.nem12 import Floats
from tether.accruals.nem_decimals import plain_decimals
from tether.accruals.nem_types import INTERVALS, unit


def _rows(texts: list[str], width: int) -> list[str]:
    return [",".join(texts[i : i + width]) for i in range(0, len(texts), width)]


def _same(got: np.ndarray | None, texts: list[str], width: int) -> bool:
    expected = np.array([float(t) for t in texts]).reshape(-1, width)
    return got is not None and got.tobytes() == expected.tobytes()  # bit for bit


@pytest.mark.parametrize("places", range(8))
def test_plain_decimals_are_float_of_their_text_bit_for_bit(places: int) -> None:
    rng = np.random.default_rng(places)
    for top in (1.0, 10.0, 1e4, 1e7):
        values = rng.uniform(0, top, 48 * 40) * (rng.random(48 * 40) < 0.9)  # some zeros
        texts = [f"{v:.{places}f}" for v in values]
        texts = [t for t in texts if len(t) <= 15][: 48 * 20]
        texts = texts[: len(texts) // 48 * 48]
        assert _same(plain_decimals(_rows(texts, 48), len(texts) // 48, 48), texts, 48)


@pytest.mark.parametrize(
    "texts",
    [
        ["007", "0", "999999999999999", "12"],  # no dot, longest 15 digits
        ["5.", "0.", "123."],  # dot last
        [".5", ".0", "12.7"],  # dot first
        ["0.283", "12.500", "99999999999.999", "0.000"],  # longer values than the rest
    ],
)
def test_unusual_but_plain_forms(texts: list[str]) -> None:
    texts = (texts * 12)[:12]
    assert _same(plain_decimals(_rows(texts, 4), 3, 4), texts, 4)


@pytest.mark.parametrize(
    "text",
    ["", ".", "1..2", "1.2.", "1e5", " 1", "1 ", "-1", "+1", "1_0", "inf", "nan", "\uff11",
     "1234567890123456", "0.12", "1.2345", "0x1"],
)  # fmt: skip
def test_anything_else_takes_the_general_path(text: str) -> None:
    assert plain_decimals(["0.100,0.200", f"0.300,{text}"], 2, 2) is None


def test_a_row_count_that_does_not_match_takes_the_general_path() -> None:
    assert plain_decimals(["1.0,2.0", "3.0"], 2, 2) is None


def test_both_paths_agree_on_a_generated_file(tmp_path: Path) -> None:
    """The generator's files take the numpy path, and the parser's values are float(text),
    converted to kWh, for every value of every channel-day (a reference read with split)."""
    result = generate(40, 1, tmp_path, seed=5, end=date(2026, 11, 30))
    for path in result.nem12_files:
        expected: dict[tuple[str, str, int], list[float]] = {}
        raws: dict[int, list[str]] = {w: [] for w in INTERVALS.values()}
        nmi = suffix = ""
        mul = div = 1.0
        width = 48
        for line in path.read_text().splitlines():
            parts = line.split(",")
            if parts[0] == "200":
                nmi, suffix, width = parts[1], parts[4], INTERVALS[int(parts[8])]
                _, mul, div = unit(parts[7]) or ("", 1.0, 1.0)
            elif parts[0] == "300":
                day = (date.fromisoformat(parts[1]) - date(1970, 1, 1)).days
                expected[nmi, suffix, day] = [float(t) * mul / div for t in parts[2 : width + 2]]
                raws[width].append(",".join(parts[2 : width + 2]))
        for width, rows in raws.items():
            if rows:
                fast = plain_decimals(rows, len(rows), width)
                assert fast is not None  # the generator writes plain decimals
                assert fast.tobytes() == Floats().parse(rows, len(rows), width).tobytes()
        parsed = parse(path)
        assert parsed.errors == []
        got = {
            (b.nmi[i], b.suffix[i], int(b.day[i].astype(np.int64))): b.values[i].tolist()
            for b in parsed.channel_days
            for i in range(len(b))
        }
        assert got == expected  # float equality, so bit for bit (no NaN here)
