"""A batch's interval values parsed with numpy, without one Python string per value.

Meter data providers write interval values as plain decimals with a fixed number of places
(``0.283``, ``12.500``). For such a batch the value text is read as bytes, column by column
from the right of every value (one numpy gather per character position), into the integer of
its digits; dividing that by 10^places gives exactly ``float(text)``: both are exact doubles
(at most 15 digits), and IEEE division rounds their quotient correctly, as ``float`` does. Any
other text (signs, exponents, spaces, blanks, mixed places) returns None, and the caller takes
the general path, which gives the same numbers or the quarantine reason.
"""

from __future__ import annotations

import numpy as np

from tether.accruals.nem_types import F64

_COMMA, _DOT, _ZERO = 44, 46, 48
_POW = 10.0 ** np.arange(16)
_MAX_CHARS = 15  # digits (and the dot) of a value: below 2**53, so every sum is exact
_LEAD = "," * _MAX_CHARS


def plain_decimals(raws: list[str], n: int, width: int) -> F64 | None:
    """The n x width values of ``raws`` (rows of comma-separated values), or None when any
    value is not digits with one dot at the same place from the right as all the others."""
    try:  # each value ends at a comma; the leading ones let ends - j stay inside
        text = ",".join([_LEAD, *raws, ""]).encode("ascii")
    except UnicodeEncodeError:
        return None
    buffer = np.frombuffer(text, dtype=np.uint8)
    chars = buffer[_MAX_CHARS + 1 :]  # the values, each followed by its comma
    ends = np.flatnonzero(chars == _COMMA)  # where each value ends
    if ends.size != n * width or not ends.size:
        return None
    lens = np.empty_like(ends)
    lens[0] = ends[0]
    np.subtract(ends[1:], ends[:-1], out=lens[1:])
    lens[1:] -= 1
    shortest, longest = int(lens.min()), int(lens.max())
    if shortest < 1 or longest > _MAX_CHARS:
        return None
    total = np.zeros(ends.size)
    places = -1  # the dot's place from the right once seen; -1: no dot (yet)
    offset = 0.0  # what the dense columns' '0' characters added
    for j in range(1, longest + 1):
        rows = None if j <= shortest else np.flatnonzero(lens >= j)  # longer values only
        c = buffer[_MAX_CHARS + 1 - j :].take(ends if rows is None else ends[rows])
        digits = np.count_nonzero((c - np.uint8(_ZERO)) <= 9)
        if digits != c.size:
            if rows is not None or places >= 0 or np.count_nonzero(c == _DOT) != c.size:
                return None  # a dot not in every value at the same place, or another char
            places = j - 1
            continue
        power = _POW[j - 1 if places < 0 else j - 2]
        if rows is None:
            total += c * power
            offset += _ZERO * power
        else:
            total[rows] += (c - float(_ZERO)) * power
    if places == 0 and shortest == 1:
        return None  # "." alone: no digit at all
    total -= offset
    if places > 0:
        total /= _POW[places]
    return total.reshape(n, width)
