"""User files that are not UTF-8: one line naming the file, the byte, its offset and the fix."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tether.core import textfiles


def test_a_latin1_file_names_the_byte_and_its_offset(tmp_path: Path) -> None:
    lat = tmp_path / "lat.csv"
    lat.write_bytes("business_id,name\n123,Hafslund Strøm\n".encode("latin-1"))
    with pytest.raises(textfiles.NotUtf8) as caught:
        textfiles.read_text(lat)
    assert caught.value.message == f"{lat} is not UTF-8 (byte 0xf8 at offset 33): save it as UTF-8"
    with pytest.raises(textfiles.NotUtf8) as streamed:
        list(textfiles.lines(lat))
    assert streamed.value.message == caught.value.message  # the same offset, line by line


def test_utf8_with_or_without_a_byte_order_mark_reads_the_same(tmp_path: Path) -> None:
    text = 'business_id,name\n123,"Hafslund\r\nStrøm"\r\n'
    plain, marked = tmp_path / "plain.csv", tmp_path / "marked.csv"
    plain.write_bytes(text.encode())
    marked.write_bytes(text.encode("utf-8-sig"))
    assert textfiles.read_text(plain) == textfiles.read_text(marked) == text
    rows = list(csv.reader(textfiles.lines(marked)))
    assert rows == [["business_id", "name"], ["123", "Hafslund\r\nStrøm"]]


def test_the_offset_counts_the_byte_order_mark(tmp_path: Path) -> None:
    marked = tmp_path / "m.csv"
    marked.write_bytes(b"\xef\xbb\xbfab\n\xff\n")
    with pytest.raises(textfiles.NotUtf8, match="byte 0xff at offset 6"):
        list(textfiles.lines(marked))
    with pytest.raises(textfiles.NotUtf8, match="byte 0xff at offset 6"):
        textfiles.read_text(marked)
