"""A streaming, columnar NEM12/NEM13 parser (AEMO MDFF): day rows in, numpy batches out.

The file is read line by line; each 300 row stays one row (its values text kept whole) until a
batch is full, then the batch's values are parsed in one pass (``nem_decimals``, else
``nem12.Floats``). Nothing is dropped silently:
a structural problem (no 100 header first, a second 100, no 900 last, rows after 900) rejects the
file; any other bad row is quarantined in :attr:`NemFile.errors` with its line and reason, and
nothing of it is kept. Batches are yielded before the end of the file is known, so a consumer
must discard what it got when :attr:`NemFile.rejected` is set after iterating.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tether.accruals.nem12 import (
    Channel,
    ChannelDayColumns,
    Floats,
    Methods,
    bad_400,
    count_problem,
)
from tether.accruals.nem13 import BasicReadColumns
from tether.accruals.nem_types import (
    INTERVALS,
    QUALITY_METHOD,
    BasicReads,
    Batch,
    ChannelDays,
    Clock,
    RowError,
    unit,
)

__all__ = ["BasicReads", "Batch", "ChannelDays", "NemFile", "ParsedFile", "RowError", "parse"]

_NAT = -(2**63)
_PLAIN: dict[int, dict[str, bytes]] = {w: {} for w in INTERVALS.values()}


def _plain_flags(qm: str, width: int) -> bytes | None:
    """A day's flags (its letter per interval) for a valid QualityMethod other than V, else
    None (memoised per width: a file uses a handful, and the bytes are shared by its rows)."""
    flags = _PLAIN[width].get(qm)
    if flags is None and QUALITY_METHOD.fullmatch(qm) and qm[0] != "V":
        flags = qm[0].encode() * width
        if len(_PLAIN[width]) < 1000:
            _PLAIN[width][qm] = flags
    return flags


class Rejected(Exception):
    """The file is structurally broken; nothing of it may be stored."""


_VArgs = tuple[Channel, int, str, tuple[str, str, str], tuple[int, int]]


class _VDay:
    """A 300 row with quality V, held back until its 400 rows are known to cover the day."""

    def __init__(self, args: _VArgs, width: int, line: int) -> None:
        self.args = args
        self.flags = bytearray(width)
        self.methods: list[tuple[int, int, str, str, str]] = []
        self.lines: list[int] = []
        self.line = line
        self.bad: str | None = None


class NemFile:
    """One NEM12 or NEM13 file; iterate :meth:`batches`, then read ``errors``/``rejected``."""

    def __init__(self, path: str | os.PathLike[str], *, batch_rows: int = 4096) -> None:
        self.path = Path(path)
        self.batch_rows = batch_rows
        self.format: str | None = None  #: "NEM12" or "NEM13" from the 100 header
        self.errors: list[RowError] = []
        self.rejected: str | None = None
        self.bytes_read = 0
        self.size = self.path.stat().st_size
        self._clock = Clock()
        floats = Floats()
        self._groups = {m: ChannelDayColumns(m, w, floats) for m, w in INTERVALS.items()}
        self._basic = BasicReadColumns(self._clock)
        self._channel: Channel | None = None
        self._last = ""  # what the previous data row was, for 400/500/550 placement
        self._last_300 = 0
        self._vday: _VDay | None = None
        self._ended = False
        self._ready = False  # a batch may be full
        self._handlers = {
            "200": self._r200, "300": self._r300, "400": self._r400, "500": self._r500,
            "250": self._r250, "550": self._r550,
        }  # fmt: skip

    # --- driving -------------------------------------------------------------------------------

    def batches(self) -> Iterator[Batch]:
        """Batches of channel-days (one interval length each) and basic reads, streaming."""
        try:
            yield from self._read()
        except Rejected as exc:
            self.rejected = str(exc)
        self.errors.sort(key=lambda e: e.line)

    def _read(self) -> Iterator[Batch]:
        number = read = 0
        r300 = self._r300_line
        with self.path.open(encoding="utf-8-sig", errors="replace", newline=None) as f:
            for number, text in enumerate(f, start=1):
                read += len(text)
                line = text.rstrip("\n")
                if "\x00" in line:  # PostgreSQL text cannot hold it: the row is damaged
                    self._damaged(line, number)
                elif line.startswith("300,"):
                    r300(line, number)
                elif line.strip():
                    self._line(line.split(","), number)
                if self._ready:
                    self.bytes_read, self._ready = read, False
                    yield from self._full()
        self.bytes_read = read
        if self.format is None:
            self._reject(1, "empty file: no 100 header")
        if self._vday is not None:
            self._close_vday()
        if not self._ended:
            self._reject(number + 1, "missing 900 end record")
        for group in self._groups.values():
            batch = group.take(self.errors)
            if batch is not None:
                yield batch
        if len(self._basic):
            yield self._basic.take()

    def _line(self, parts: list[str], number: int) -> None:
        kind = parts[0].strip()
        if number == 1 or self.format is None:
            return self._r100(parts, kind, number)
        if self._ended:
            self._reject(number, "record after the 900 end record")
        if kind != "400" and self._vday is not None:
            self._close_vday()
        if kind == "900":
            self._ended = True
            return None
        if kind == "100":
            self._reject(number, "a second 100 header")
        handler = self._handlers.get(kind)
        if handler is None:
            self._last = "?"
            return self._error(number, f"unknown record type {kind[:20]!r}")
        return handler(parts, number)

    def _full(self) -> Iterator[Batch]:
        for group in self._groups.values():
            if len(group) >= self.batch_rows:
                batch = group.take(self.errors)
                if batch is not None:
                    yield batch
        if len(self._basic) >= self.batch_rows:
            yield self._basic.take()

    def _damaged(self, line: str, number: int) -> None:
        """Quarantine a row with a NUL character, and what depends on it."""
        kind = line.split(",", 1)[0].strip()
        if number == 1 or self.format is None:
            self._reject(number, "the 100 header contains a NUL character")
        if kind == "400" and self._vday is not None:
            self._vday.bad = f"V day with a bad 400 row at line {number}"
        elif self._vday is not None:
            self._close_vday()
        self._error(number, "row contains a NUL character")
        if kind == "200":
            self._channel = Channel(line=number, bad="row contains a NUL character")
        if kind == "300":
            self._last_300 = number
        self._last = {"200": "200", "300": "300!", "400": "400!", "250": "250!"}.get(kind, "?")

    def _reject(self, line: int, reason: str) -> None:
        self.errors.append(RowError(line=line, reason=reason))
        raise Rejected(f"line {line}: {reason}")

    def _error(self, line: int, reason: str) -> None:
        self.errors.append(RowError(line=line, reason=reason))

    # --- records -------------------------------------------------------------------------------

    def _r100(self, parts: list[str], kind: str, line: int) -> None:
        if kind != "100":
            self._reject(line, "the file does not start with a 100 header")
        fields = [p.strip() for p in parts]
        version = fields[1].upper() if len(fields) > 1 else ""
        if version not in ("NEM12", "NEM13"):
            self._reject(line, f"100 header names {version!r}, not NEM12 or NEM13")
        if len(fields) < 5 or len(fields[2]) != 12 or self._clock.day(fields[2][:8]) is None:
            self._reject(line, "100 header needs DateTime (yyyyMMddHHmm), From and To")
        self.format = version

    def _r200(self, parts: list[str], line: int) -> None:
        self._last = "200"
        self._channel = Channel(line=line, bad=self._bad_200(parts, line))
        if self._channel.bad is not None:
            self._error(line, self._channel.bad)
            return
        f = [p.strip() for p in parts]
        uom = unit(f[7])
        assert uom is not None  # checked in _bad_200
        interval = int(f[8])
        self._channel = Channel(
            line=line, nmi=f[1], register_id=f[3], suffix=f[4], uom=uom[0], mul=uom[1],
            div=uom[2], interval=interval, width=INTERVALS[interval],
        )  # fmt: skip

    def _bad_200(self, parts: list[str], line: int) -> str | None:
        if self.format != "NEM12":
            return "200 row in a NEM13 file"
        if len(parts) not in (9, 10):
            return f"200 row has {len(parts)} fields, expected 10"
        f = [p.strip() for p in parts]
        if len(f[1]) != 10 or not f[1].isalnum():
            return f"bad NMI {f[1]!r}"
        if not f[4] or len(f[4]) > 2 or not f[4].isalnum():
            return f"bad NMISuffix {f[4]!r}"
        if unit(f[7]) is None:
            return f"unknown UOM {f[7]!r}"
        if not f[8].isdigit() or int(f[8]) not in INTERVALS:
            return f"IntervalLength {f[8]!r} is not 5, 15 or 30 minutes"
        return None

    def _r300(self, parts: list[str], line: int) -> None:
        self._last, self._last_300 = "300!", line  # until proven good
        ch = self._channel
        if ch is None or ch.bad is not None:
            where = "before any 200 row" if ch is None else f"of the bad 200 row at line {ch.line}"
            return self._error(line, f"300 row {where}")
        width = ch.width
        n = len(parts)
        qm = parts[width + 2].strip() if n > width + 2 else ""
        if not QUALITY_METHOD.fullmatch(qm) or n > width + 7:
            return self._error(line, count_problem(parts, ch))
        day = self._clock.day(parts[1])
        if day is None:
            return self._error(line, f"bad IntervalDate {parts[1].strip()!r}")
        update = self._clock.stamp(parts[width + 5]) if n > width + 5 else -(2**63)
        msats = self._clock.stamp(parts[width + 6]) if n > width + 6 else -(2**63)
        if update is None or msats is None:
            return self._error(line, "bad UpdateDateTime or MSATSLoadDateTime")
        reason = parts[width + 3].strip() if n > width + 3 else ""
        desc = parts[width + 4].strip() if n > width + 4 else ""
        raw = ",".join(parts[2 : width + 2])
        fields = (qm, reason, desc)
        if qm[0] == "V":
            self._last = "300V"
            self._vday = _VDay((ch, day, raw, fields, (update, msats)), width, line)
            return None
        self._last = "300"
        group = self._groups[ch.interval]
        group.add(ch, day, raw, qm[0].encode() * width, fields, (update, msats), None, line)
        self._ready |= len(group) >= self.batch_rows
        return None

    def _r300_line(self, line: str, number: int) -> None:
        """The common 300 row without splitting its values; anything unusual takes ``_r300``."""
        ch = self._channel
        if ch is None or ch.bad is not None or self._vday is not None or number == 1:
            return self._line(line.split(","), number)
        if self._ended or self.format is None:
            return self._line(line.split(","), number)
        trailing = line.count(",") - 1 - ch.width  # fields after the values
        if not 1 <= trailing <= 5:
            return self._line(line.split(","), number)
        head, *tail = line.rsplit(",", trailing)
        qm = tail[0].strip()
        clock = self._clock
        day = clock.day(head[4:12]) if head[12:13] == "," else None
        update = clock.stamp(tail[3]) if trailing > 3 else _NAT
        msats = clock.stamp(tail[4]) if trailing > 4 else _NAT
        flags = _plain_flags(qm, ch.width)
        if day is None or update is None or msats is None or flags is None:
            return self._line(line.split(","), number)
        self._last, self._last_300 = "300", number
        reason = tail[1].strip() if trailing > 1 else ""
        desc = tail[2].strip() if trailing > 2 else ""
        rows = self._groups[ch.interval].rows  # ChannelDayColumns.add, inlined: the hot path
        rows.append((ch, day, head[13:], flags, qm, reason, desc, update, msats,
                     None, number, ()))  # fmt: skip
        self._ready |= len(rows) >= self.batch_rows
        return None

    def _r400(self, parts: list[str], line: int) -> None:
        vday = self._vday
        if vday is None:
            if self._last in ("300!", "400!"):
                why = f"400 row of the quarantined 300 row at line {self._last_300}"
            elif self._last == "300":
                why = "400 row after a 300 row whose quality is not V"
            else:
                why = "400 row not after a 300 row"
            self._last = "400!"
            return self._error(line, why)
        vday.lines.append(line)
        f = [p.strip() for p in parts]
        problem = bad_400(f, len(vday.flags))
        if problem is None:
            first, last = int(f[1]), int(f[2])
            if any(vday.flags[first - 1 : last]):
                problem = f"400 row overlaps intervals already covered ({first}-{last})"
            else:
                vday.flags[first - 1 : last] = f[3][0].encode() * (last - first + 1)
                vday.methods.append((first, last, f[3], f[4], f[5] if len(f) > 5 else ""))
        if problem is not None and vday.bad is None:
            vday.bad = f"V day with a bad 400 row at line {line}"
            self._error(line, problem)
            vday.lines.pop()
        return None

    def _close_vday(self) -> None:
        vday, self._vday = self._vday, None
        assert vday is not None
        missing = vday.flags.count(0)
        if vday.bad is None and missing:
            vday.bad = f"400 rows leave {missing} intervals of the V day uncovered"
        if vday.bad is not None:
            self._error(vday.line, vday.bad)
            for x in vday.lines:
                self._error(x, f"400 row of the quarantined 300 row at line {vday.line}")
            return
        ch, day, raw, fields, stamps = vday.args
        methods: Methods = tuple(vday.methods)
        group = self._groups[ch.interval]
        group.add(
            ch, day, raw, bytes(vday.flags), fields, stamps, methods, vday.line, tuple(vday.lines)
        )
        self._ready |= len(group) >= self.batch_rows

    def _r500(self, parts: list[str], line: int) -> None:
        if self._last not in ("300", "300V", "400", "500"):
            why = "500 row not after a 300, 400 or 500 row"
            if self._last in ("300!", "400!", "500!"):
                why = f"500 row of the quarantined 300 row at line {self._last_300}"
            self._last = "500!"
            return self._error(line, why)
        f = [p.strip() for p in parts]
        self._last = "500"
        if len(f) not in (4, 5) or (f[3] and self._clock.stamp(f[3]) is None):
            self._last = "500!"
            self._error(line, "bad 500 row (TransCode, RetServiceOrder, ReadDateTime, IndexRead)")
        return None

    def _r250(self, parts: list[str], line: int) -> None:
        self._last = "250"
        reason = "250 row in a NEM12 file" if self.format != "NEM13" else None
        reason = reason or self._basic.add(parts, line)
        self._ready |= len(self._basic) >= self.batch_rows
        if reason is not None:
            self._last = "250!"
            self._error(line, reason)

    def _r550(self, parts: list[str], line: int) -> None:
        if self._last != "250":
            why = "550 row not after a valid 250 row"
            self._last = "550!"
            return self._error(line, why)
        self._last = "550"
        if len(parts) != 5:
            self._error(line, f"550 row has {len(parts)} fields, expected 5")
        return None


@dataclass(frozen=True, kw_only=True)
class ParsedFile:
    """A whole file's batches in memory (tests and small files; ingest streams instead)."""

    format: str | None
    channel_days: list[ChannelDays]
    basic_reads: list[BasicReads]
    errors: list[RowError]
    rejected: str | None


def parse(path: str | os.PathLike[str], *, batch_rows: int = 4096) -> ParsedFile:
    """Parse a whole file at once."""
    nem = NemFile(path, batch_rows=batch_rows)
    batches = list(nem.batches())
    return ParsedFile(
        format=nem.format,
        channel_days=[b for b in batches if isinstance(b, ChannelDays)],
        basic_reads=[b for b in batches if isinstance(b, BasicReads)],
        errors=nem.errors,
        rejected=nem.rejected,
    )
