"""Text files a user hands to a command (CSV lists, reference data), read as UTF-8.

A spreadsheet saved in Latin-1 or Windows-1252 ("Hafslund Strøm" with a lone 0xf8) used to end
in a ``UnicodeDecodeError`` traceback. Every reader of a user's file goes through here instead,
so such a file gets one line naming the file, the first bad byte and its offset, and the fix.
A leading UTF-8 byte order mark (what spreadsheets write for "CSV UTF-8") is dropped.
"""

from __future__ import annotations

import codecs
from collections.abc import Generator
from pathlib import Path

from tether.core.errors import InvalidInput


class NotUtf8(InvalidInput):
    """A user's text file is not UTF-8."""

    def __init__(self, name: str, byte: int, offset: int) -> None:
        super().__init__(
            f"{name} is not UTF-8 (byte 0x{byte:02x} at offset {offset}): save it as UTF-8"
        )
        self.offset = offset


def decode(name: str, data: bytes, *, start: int = 0) -> str:
    """``data`` as text; ``start`` is where it begins in the file (for the offset shown)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotUtf8(name, data[exc.start], start + exc.start) from None


def read_text(path: Path) -> str:
    """The whole file as text (without a byte order mark); ``NotUtf8`` when it is not UTF-8."""
    data = path.read_bytes()
    bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    return decode(str(path), data[bom:], start=bom)


def lines(path: Path) -> Generator[str]:
    """The file's lines with their line endings (what ``csv.reader`` wants), decoded one at a
    time so a large file streams; ``NotUtf8`` at the first bad line, so a caller that stores
    only after the last line stores nothing. Splitting the bytes at ``\\n`` is safe: no UTF-8
    sequence holds that byte."""
    offset = 0
    with path.open("rb") as fh:
        for number, raw in enumerate(fh):
            if number == 0 and raw.startswith(codecs.BOM_UTF8):
                raw, offset = raw[len(codecs.BOM_UTF8) :], len(codecs.BOM_UTF8)
            yield decode(str(path), raw, start=offset)
            offset += len(raw)
