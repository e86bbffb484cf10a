"""Every malformed-input rule: what is rejected, what is quarantined (line, reason), kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tether.accruals.nem import ParsedFile, parse

HEAD = "100,NEM12,200405011135,MDA1,Ret1"
C30 = "200,NMI0000001,E1,1,E1,N1,MS1,kWh,30,"


def day(date: str, value: str = "1.0", n: int = 48, tail: str = "A,,,20040202120025,") -> str:
    return f"300,{date}," + ",".join([value] * n) + "," + tail


def run(tmp_path: Path, *lines: str, name: str = "f.csv") -> ParsedFile:
    path = tmp_path / name
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return parse(path)


def rows(result: ParsedFile) -> int:
    return sum(len(b) for b in result.channel_days)


def reasons(result: ParsedFile) -> list[tuple[int, str]]:
    return [(e.line, e.reason) for e in result.errors]


def test_a_good_file_with_crlf_loads_every_row(tmp_path: Path) -> None:
    result = run(tmp_path, HEAD, C30, day("20040201"), day("20040202"), "900")
    assert result.rejected is None and result.errors == []
    assert rows(result) == 2


def test_missing_100_header_rejects_the_file(tmp_path: Path) -> None:
    result = run(tmp_path, C30, day("20040201"), "900")
    assert result.rejected is not None
    assert reasons(result) == [(1, "the file does not start with a 100 header")]


def test_missing_900_rejects_the_file(tmp_path: Path) -> None:
    result = run(tmp_path, HEAD, C30, day("20040201"))
    assert result.rejected == "line 4: missing 900 end record"


def test_rows_after_900_reject_the_file(tmp_path: Path) -> None:
    result = run(tmp_path, HEAD, C30, "900", day("20040201"))
    assert reasons(result) == [(4, "record after the 900 end record")]
    assert result.rejected is not None


def test_a_second_100_header_rejects_the_file(tmp_path: Path) -> None:
    result = run(tmp_path, HEAD, C30, day("20040201"), HEAD, "900")
    assert reasons(result) == [(4, "a second 100 header")]


def test_wrong_value_count_is_quarantined_with_its_line(tmp_path: Path) -> None:
    result = run(tmp_path, HEAD, C30, day("20040201", n=47), day("20040202"), "900")
    assert result.rejected is None
    assert reasons(result) == [(3, "300 row has 47 values, expected 48 (1440 / IntervalLength 30)")]
    assert rows(result) == 1
    assert str(result.channel_days[0].day[0]) == "2004-02-02"


def test_ten_minute_interval_quarantines_the_channel_and_its_days(tmp_path: Path) -> None:
    c10 = "200,NMI0000001,E1,1,E1,N1,MS1,kWh,10,"
    result = run(tmp_path, HEAD, c10, day("20040201", n=144), C30, day("20040201"), "900")
    assert reasons(result) == [
        (2, "IntervalLength '10' is not 5, 15 or 30 minutes"),
        (3, "300 row of the bad 200 row at line 2"),
    ]
    assert rows(result) == 1


@pytest.mark.parametrize(("interval", "width"), [(5, 288), (15, 96), (30, 48)])
def test_each_interval_length_gives_its_width(tmp_path: Path, interval: int, width: int) -> None:
    channel = f"200,NMI0000001,E1,1,E1,N1,MS1,kWh,{interval},"
    result = run(tmp_path, HEAD, channel, day("20040201", n=width), "900")
    (batch,) = result.channel_days
    assert batch.values.shape == (1, width) and batch.interval_length == interval


def test_400_rows_not_covering_the_day_quarantine_the_day(tmp_path: Path) -> None:
    v = day("20040201", tail="V,,,20040202120025,")
    result = run(tmp_path, HEAD, C30, v, "400,1,20,A,,", "400,22,48,E52,,", "900")
    assert reasons(result) == [
        (3, "400 rows leave 1 intervals of the V day uncovered"),
        (4, "400 row of the quarantined 300 row at line 3"),
        (5, "400 row of the quarantined 300 row at line 3"),
    ]
    assert rows(result) == 0


def test_overlapping_400_rows_quarantine_the_day(tmp_path: Path) -> None:
    v = day("20040201", tail="V,,,20040202120025,")
    result = run(tmp_path, HEAD, C30, v, "400,1,30,A,,", "400,20,48,E52,,", "900")
    assert (5, "400 row overlaps intervals already covered (20-48)") in reasons(result)
    assert (3, "V day with a bad 400 row at line 5") in reasons(result)
    assert rows(result) == 0


def test_400_after_a_non_v_day_is_quarantined_and_the_day_kept(tmp_path: Path) -> None:
    result = run(tmp_path, HEAD, C30, day("20040201"), "400,1,48,A,,", "900")
    assert reasons(result) == [(4, "400 row after a 300 row whose quality is not V")]
    assert rows(result) == 1


def test_bad_interval_date_is_quarantined(tmp_path: Path) -> None:
    result = run(tmp_path, HEAD, C30, day("20040231"), day("20040201"), "900")
    assert reasons(result) == [(3, "bad IntervalDate '20040231'")]
    assert rows(result) == 1


def test_unknown_record_type_is_quarantined(tmp_path: Path) -> None:
    result = run(tmp_path, HEAD, C30, day("20040201"), "700,x,y", "900")
    assert reasons(result) == [(4, "unknown record type '700'")]
    assert rows(result) == 1


def test_non_numeric_value_quarantines_that_row_only(tmp_path: Path) -> None:
    bad = day("20040202").replace(",1.0,", ",1.0x,", 1)
    result = run(tmp_path, HEAD, C30, day("20040201"), bad, day("20040203"), "900")
    assert reasons(result) == [(4, "300 row value 1 is not a number: '1.0x'")]
    assert [str(d) for d in result.channel_days[0].day] == ["2004-02-01", "2004-02-03"]


def test_negative_value_is_quarantined(tmp_path: Path) -> None:
    result = run(tmp_path, HEAD, C30, day("20040201", value="-1"), "900")
    assert reasons(result) == [(3, "300 row has a negative or non-finite value")]
    assert rows(result) == 0


def test_repeated_200_rows_continue_the_channel(tmp_path: Path) -> None:
    result = run(tmp_path, HEAD, C30, day("20040201"), C30, day("20040202"), "900")
    assert result.errors == []
    (batch,) = result.channel_days
    assert batch.suffix.tolist() == ["E1", "E1"]
    assert [str(d) for d in batch.day] == ["2004-02-01", "2004-02-02"]


def test_upper_case_units_are_understood(tmp_path: Path) -> None:
    c = "200,NMI0000001,E1,1,E1,N1,MS1,KWH,30,"
    q = "200,NMI0000001,E1,1,Q1,N1,MS1,KVARH,30,"
    result = run(tmp_path, HEAD, c, day("20040201"), q, day("20040201"), "900")
    assert result.channel_days[0].uom.tolist() == ["kWh", "kVArh"]


def test_wh_and_mwh_are_converted_to_kwh(tmp_path: Path) -> None:
    wh = "200,NMI0000001,E1,1,E1,N1,MS1,Wh,30,"
    mwh = "200,NMI0000002,E1,1,E1,N1,MS1,mwh,30,"
    result = run(tmp_path, HEAD, wh, day("20040201", "1500"), mwh, day("20040201", "0.002"), "900")
    (batch,) = result.channel_days
    assert batch.uom.tolist() == ["kWh", "kWh"]
    assert np.all(batch.values[0] == 1.5) and np.all(batch.values[1] == 2.0)


def test_unknown_unit_quarantines_the_channel(tmp_path: Path) -> None:
    c = "200,NMI0000001,E1,1,E1,N1,MS1,furlongs,30,"
    result = run(tmp_path, HEAD, c, day("20040201"), "900")
    assert reasons(result)[0] == (2, "unknown UOM 'furlongs'")
    assert rows(result) == 0


def test_stray_spaces_are_trimmed(tmp_path: Path) -> None:
    c = "200, NMI0000001 ,E1,1, E1 ,N1,MS1, kWh , 30 ,"
    d = "300, 20040201 ," + ",".join([" 1.5 "] * 48) + ", A ,,, 20040202120025 ,"
    result = run(tmp_path, HEAD, c, d, "900")
    assert result.errors == []
    (batch,) = result.channel_days
    assert batch.nmi.tolist() == ["NMI0000001"] and batch.suffix.tolist() == ["E1"]
    assert np.all(batch.values == 1.5) and batch.quality_method.tolist() == ["A"]
    assert str(batch.update_datetime[0]) == "2004-02-02T12:00:25"


def test_500_rows_are_validated_and_ignored(tmp_path: Path) -> None:
    result = run(
        tmp_path, HEAD, C30, day("20040201"), "500,O,S1,20040304050505,001", "500,O,S1,2004,1",
        "900",
    )  # fmt: skip
    assert reasons(result) == [
        (5, "bad 500 row (TransCode, RetServiceOrder, ReadDateTime, IndexRead)")
    ]
    assert rows(result) == 1


def test_nem13_bad_rows_quarantined_and_550_checked(tmp_path: Path) -> None:
    def read(qty: str, direction: str = "E") -> str:
        return (
            f"250,NMI0000009,11,1,11,11,MS1,{direction},1.0,20031005093055,A,,,2.0,"
            f"20040107100333,A,,,{qty},KWH,20040407,20040108100333,20040108091133"
        )

    result = run(
        tmp_path, "100,NEM13,200401101030,MDA1,Ret1", read("1.0"), "550,N,,A,", read("-5"),
        read("3", "X"), "550,N,,A,", read("7000"), "900",
    )  # fmt: skip
    assert reasons(result) == [
        (4, "negative Quantity -5"),
        (5, "bad DirectionIndicator 'X' (E or I)"),
        (6, "550 row not after a valid 250 row"),
    ]
    (reads,) = result.basic_reads
    assert reads.quantity.tolist() == [1.0, 7000.0]
    assert reads.uom.tolist() == ["kWh", "kWh"]


def test_empty_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    result = parse(path)
    assert result.rejected is not None and result.errors[0].line == 1


def test_batches_split_a_large_file_without_losing_rows(tmp_path: Path) -> None:
    days = [day(f"200402{d:02d}", value=str(d)) for d in range(1, 29)]
    path = tmp_path / "big.csv"
    path.write_text("\n".join([HEAD, C30, *days, "900"]) + "\n")
    result = parse(path, batch_rows=5)
    assert [len(b) for b in result.channel_days] == [5, 5, 5, 5, 5, 3]
    values = np.concatenate([b.values[:, 0] for b in result.channel_days])
    assert values.tolist() == [float(d) for d in range(1, 29)]


def test_values_python_accepts_but_c_parsers_refuse_are_quarantined(tmp_path: Path) -> None:
    bad = day("20040202").replace(",1.0,", ",1_0,", 1)
    result = run(tmp_path, HEAD, C30, day("20040201"), bad, "900")
    assert reasons(result) == [(4, "300 row value 1 is not a number: '1_0'")]
    assert rows(result) == 1


def test_memoised_and_loadtxt_value_parsing_agree() -> None:
    from tether.accruals.nem12 import Floats

    rng = np.random.default_rng(1)
    texts = [f"{v:.6f}" for v in rng.uniform(0, 5, 48 * 50)]  # mostly distinct values
    raws = [",".join(texts[i * 48 : (i + 1) * 48]) for i in range(50)]
    floats = Floats()
    first = floats.parse(raws, 50, 48)
    assert not floats.useful  # too many distinct values: the next batches use loadtxt
    second = floats.parse(raws, 50, 48)
    expected = np.array([float(t) for t in texts]).reshape(50, 48)
    assert np.array_equal(first, expected) and np.array_equal(second, expected)
    with pytest.raises(ValueError):
        Floats().parse(["1.0,x"], 1, 2)
    with pytest.raises(ValueError):
        floats.parse(["1.0,x"], 1, 2)


def test_a_wrapped_300_row_quarantines_both_halves(tmp_path: Path) -> None:
    whole = day("20040202")
    cut = whole.index(",", 100)
    result = run(tmp_path, HEAD, C30, day("20040201"), whole[:cut], whole[cut + 1 :], "900")
    assert [line for line, _ in reasons(result)] == [4, 5]
    assert reasons(result)[1][1].startswith("unknown record type")
    assert rows(result) == 1


def test_a_utf8_byte_order_mark_is_not_a_broken_header(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + ("\r\n".join([HEAD, C30, day("20040201"), "900"])).encode())
    result = parse(path)
    assert result.errors == [] and rows(result) == 1


def test_a_row_with_a_nul_character_is_quarantined(tmp_path: Path) -> None:
    bad = day("20040202", tail="A,,re\x00ason,20040202120025,")
    result = run(tmp_path, HEAD, C30, day("20040201"), bad, "900")
    assert reasons(result) == [(4, "row contains a NUL character")]
    assert rows(result) == 1


def test_a_damaged_200_row_takes_its_days_with_it(tmp_path: Path) -> None:
    other = "200,NMI0000002,E1,1,E1,N1,MS\x001,kWh,30,"
    result = run(tmp_path, HEAD, C30, day("20040201"), other, day("20040202"), "900")
    assert reasons(result) == [
        (4, "row contains a NUL character"),
        (5, "300 row of the bad 200 row at line 4"),
    ]
    assert result.channel_days[0].nmi.tolist() == ["NMI0000001"]
