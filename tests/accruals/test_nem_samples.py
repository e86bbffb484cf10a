"""The parser against every public sample file (read in place from shared/data/nem)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import SHARED
from tether.accruals.nem import parse

NEM = SHARED / "data" / "nem"


def test_every_sample_parses_without_errors() -> None:
    files = sorted(NEM.glob("*.csv"))
    assert len(files) == 4
    for path in files:
        result = parse(path)
        assert result.rejected is None, path
        assert result.errors == [], path


def test_actual_interval_e1_kwh_and_q1_kvarh_kept_in_its_unit() -> None:
    result = parse(NEM / "Example_NEM12_actual_interval.csv")
    assert result.format == "NEM12"
    (batch,) = result.channel_days
    assert batch.interval_length == 30
    assert batch.nmi.tolist() == ["VABD000163", "VABD000163"]
    assert batch.suffix.tolist() == ["E1", "Q1"]
    assert batch.uom.tolist() == ["kWh", "kVArh"]
    assert batch.values.shape == (2, 48)
    assert np.all(batch.values[0] == 1.111) and np.all(batch.values[1] == 2.222)
    assert batch.totals[0] == pytest.approx(48 * 1.111)
    assert str(batch.day[0]) == "2004-02-01"
    assert str(batch.update_datetime[0]) == "2004-02-02T12:00:25"
    assert str(batch.msats_load_datetime[0]) == "2004-02-02T14:25:16"
    assert np.isnat(batch.msats_load_datetime[1])
    assert batch.qualities(0) == "A" * 48


def test_multiple_quality_v_day_takes_flags_from_400_ranges() -> None:
    result = parse(NEM / "Example_NEM12_multiple_quality.csv")
    (batch,) = result.channel_days
    assert batch.quality_method.tolist() == ["V"]
    assert batch.qualities(0) == "F" * 20 + "A" * 4 + "S" * 24
    assert batch.interval_methods[0] == (
        (1, 20, "F14", "76", ""),
        (21, 24, "A", "", ""),
        (25, 48, "S14", "1", ""),
    )
    assert batch.values[0, 0] == 18.023 and batch.values[0, 47] == 14.733


def test_aemo_15_minute_e1_e2_with_500_rows() -> None:
    result = parse(NEM / "AEMO_nem12_S01_INTEGM_E1E2_15min.csv")
    (batch,) = result.channel_days
    assert batch.interval_length == 15
    assert batch.values.shape == (8, 96)
    assert sorted(set(batch.suffix.tolist())) == ["E1", "E2"]
    assert np.all(batch.values == 1.5)
    assert np.allclose(batch.totals, 144.0)


def test_nem13_basic_read_quantity_and_stray_space() -> None:
    result = parse(NEM / "Example_NEM13_consumption_data.csv")
    assert result.format == "NEM13"
    assert result.channel_days == []
    (reads,) = result.basic_reads
    assert reads.nmi.tolist() == ["VABC005890"]
    assert reads.register_id.tolist() == ["1"] and reads.suffix.tolist() == ["11"]
    assert reads.quantity.tolist() == [1312.1]
    assert reads.previous_read.tolist() == [6342.8] and reads.current_read.tolist() == [7654.9]
    assert str(reads.previous_read_at[0]) == "2003-10-05T09:30:55"
    assert str(reads.current_read_at[0]) == "2004-01-07T10:03:33"
    assert str(reads.update_datetime[0]) == "2004-01-08T10:03:33"  # had a leading space
    assert str(reads.next_scheduled_read[0]) == "2004-04-07"
    assert reads.direction.tolist() == ["E"]
