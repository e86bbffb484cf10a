"""NEM12 channel-days gathered into columns; the values of a whole batch parsed in one C call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tether.accruals.nem_decimals import plain_decimals
from tether.accruals.nem_types import QUALITY_METHOD, ChannelDays, RowError

Methods = tuple[tuple[int, int, str, str, str], ...]


@dataclass(frozen=True, kw_only=True)
class Channel:
    """The 200 row the following 300 rows belong to (``bad`` = why it was quarantined)."""

    line: int
    nmi: str = ""
    register_id: str = ""
    suffix: str = ""
    uom: str = ""
    mul: float = 1.0
    div: float = 1.0
    interval: int = 30
    width: int = 48
    bad: str | None = None


class ChannelDayColumns:
    """Valid-looking 300 rows of one interval length, kept as lists until :meth:`take`."""

    def __init__(self, interval: int, width: int, floats: Floats) -> None:
        self.interval = interval
        self.width = width
        self._floats = floats
        self._reset()

    def _reset(self) -> None:
        self.rows: list[tuple[Any, ...]] = []  #: as :meth:`add` lays them out

    def __len__(self) -> int:
        return len(self.rows)

    def add(
        self,
        ch: Channel,
        day: int,
        raw: str,
        flags: bytes,
        fields: tuple[str, str, str],
        stamps: tuple[int, int],
        methods: Methods | None,
        line: int,
        extra_lines: tuple[int, ...] = (),
    ) -> None:
        """Keep one row; ``extra_lines`` are its 400 rows (quarantined with it if it is bad)."""
        self.rows.append((ch, day, raw, flags, *fields, *stamps, methods, line, extra_lines))

    def _columns(self) -> None:
        """Rows to columns (one C-level transpose per batch instead of a dozen appends a row)."""
        (
            self.channels, self.days, self.raw, self.flags, self.qm, self.reason, self.desc,
            self.update, self.msats, self.methods, self.lines, self.extra_lines,
        ) = (list(c) for c in zip(*self.rows, strict=True))  # fmt: skip

    def _values(self, errors: list[RowError]) -> tuple[np.ndarray, np.ndarray]:
        """Values (n x width) and a mask of rows whose every value is a finite number >= 0."""
        n, width = len(self.raw), self.width
        ok = np.ones(n, dtype=bool)
        try:
            values = plain_decimals(self.raw, n, width)
            if values is None:
                values = self._floats.parse(self.raw, n, width)
        except ValueError:
            values = np.zeros((n, width))
            for i, raw in enumerate(self.raw):
                reason = _row_problem(raw)
                if reason is None:
                    values[i] = [float(x) for x in raw.split(",")]
                else:
                    ok[i] = False
                    self._quarantine(i, reason, errors)
        finite = np.isfinite(values).all(axis=1) & (values >= 0).all(axis=1)
        for i in np.flatnonzero(ok & ~finite):
            ok[i] = False
            self._quarantine(int(i), "300 row has a negative or non-finite value", errors)
        return values, ok

    def _quarantine(self, i: int, reason: str, errors: list[RowError]) -> None:
        errors.append(RowError(line=self.lines[i], reason=reason))
        errors.extend(
            RowError(line=x, reason=f"400 row of the quarantined 300 row at line {self.lines[i]}")
            for x in self.extra_lines[i]
        )

    def take(self, errors: list[RowError]) -> ChannelDays | None:
        """Everything kept so far as one batch; rows with bad values go to ``errors``."""
        if not self.rows:
            return None
        self._columns()
        values, ok = self._values(errors)
        chans = self.channels
        mul = np.fromiter((c.mul for c in chans), dtype=np.float64, count=len(chans))
        div = np.fromiter((c.div for c in chans), dtype=np.float64, count=len(chans))
        convert = (mul != 1.0) | (div != 1.0)
        if convert.any():
            values[convert] = values[convert] * mul[convert, None] / div[convert, None]
        quality = np.frombuffer(b"".join(self.flags), dtype=np.uint8).reshape(-1, self.width)
        keep = None if ok.all() else np.flatnonzero(ok)

        def obj(items: list[object]) -> np.ndarray:
            arr = np.empty(len(items), dtype=object)
            arr[:] = items
            return arr if keep is None else arr[keep]

        def pick(arr: np.ndarray) -> np.ndarray:
            return arr if keep is None else arr[keep]

        batch = ChannelDays(
            interval_length=self.interval,
            nmi=obj([c.nmi for c in chans]),
            register_id=obj([c.register_id for c in chans]),
            suffix=obj([c.suffix for c in chans]),
            uom=obj([c.uom for c in chans]),
            day=pick(np.array(self.days, dtype=np.int64).astype("datetime64[D]")),
            values=pick(values),
            quality=pick(quality),
            quality_method=obj(list(self.qm)),
            reason_code=obj(list(self.reason)),
            reason_description=obj(list(self.desc)),
            update_datetime=pick(np.array(self.update, dtype=np.int64).astype("datetime64[s]")),
            msats_load_datetime=pick(np.array(self.msats, dtype=np.int64).astype("datetime64[s]")),
            interval_methods=obj(list(self.methods)),
            line=pick(np.array(self.lines, dtype=np.int64)),
        )
        self._reset()
        return batch if len(batch) else None


def _row_problem(raw: str) -> str | None:
    """Why one row's value text is not a list of numbers (the slow path, bad batches only)."""
    for j, text in enumerate(raw.split(","), start=1):
        try:
            Floats.number(text)
        except ValueError:
            return f"300 row value {j} is not a number: {text.strip()!r}"
    return None


class Floats(dict[str, float]):
    """Value text -> float, memoised per file, for parsing a batch's values.

    Interval values are short decimals that repeat (a household's 0.000-5.000 kWh are a few
    thousand strings), so a dict hit per value beats numpy's own text parser (loadtxt) by ~1.6x;
    when a file's values turn out mostly distinct, the batches go to loadtxt instead.
    """

    LIMIT = 200_000

    def __init__(self) -> None:
        super().__init__()
        self.useful = True

    @staticmethod
    def number(text: str) -> float:
        """``float`` without what C parsers refuse (``1_000``, non-ASCII digits)."""
        if "_" in text or not text.isascii():
            raise ValueError(text)
        return float(text)

    def __missing__(self, text: str) -> float:
        value = self.number(text)
        if len(self) < self.LIMIT:
            self[text] = value
        return value

    def parse(self, raws: list[str], n: int, width: int) -> np.ndarray:
        """An n x width array of the rows' values; ValueError if any is not a number."""
        if not self.useful:
            values = np.loadtxt(raws, delimiter=",", dtype=np.float64, comments=None, ndmin=2)
            if values.shape != (n, width):
                raise ValueError("ragged")
            return values
        tokens = ",".join(raws).split(",")
        if len(tokens) != n * width:
            raise ValueError("ragged")
        before = len(self)
        flat = np.fromiter(map(self.__getitem__, tokens), dtype=np.float64, count=len(tokens))
        if len(self) - before > len(tokens) // 3 or len(self) >= self.LIMIT:
            self.useful = False
        return flat.reshape(n, width)


_QUALITY_FLAGS = frozenset("AESFVN")


def bad_400(f: list[str], width: int) -> str | None:
    """Why a 400 row (stripped fields) is not a valid range of a ``width``-interval day."""
    if len(f) not in (5, 6):
        return f"400 row has {len(f)} fields, expected 6"
    if not (f[1].isdigit() and f[2].isdigit()):
        return "400 row StartInterval and EndInterval must be numbers"
    first, last = int(f[1]), int(f[2])
    if not 1 <= first <= last <= width:
        return f"400 row range {first}-{last} is outside 1-{width}"
    if not QUALITY_METHOD.fullmatch(f[3]) or f[3][0] == "V":
        return f"400 row QualityMethod {f[3]!r} is not A, E, S, F or N (+ method)"
    return None


def count_problem(parts: list[str], ch: Channel) -> str:
    """Explain a 300 row whose QualityMethod is not where the channel's width says."""
    for i in range(2, len(parts)):
        text = parts[i].strip()
        if text and text[0] in _QUALITY_FLAGS and QUALITY_METHOD.fullmatch(text):
            got = i - 2
            if got != ch.width:
                return (
                    f"300 row has {got} values, expected {ch.width} "
                    f"(1440 / IntervalLength {ch.interval})"
                )
            return f"300 row has {len(parts)} fields, at most {ch.width + 7} expected"
    return "300 row has no QualityMethod after its values"
