"""The order XML in the one form ``build_order_xml`` writes it, read without building a tree.

Every order tether sends has this form. Reading it with ElementTree (a tree of some 60 elements,
then a walk over it by local name) was the largest part of the simulator's work per order; two
regular expressions read the same texts in a fraction of that. A match is well-formed XML of
exactly this shape whose texts ElementTree would give unchanged: every tag and the root's
namespace are literal, and a text is never empty and holds no markup (``<``, ``&``, ``>``), no
carriage return (XML reads it as a newline) and no character XML forbids. Anything else (escaped
or empty text, another prefix, whitespace between elements, another element order) does not
match, and ``oppdrag.parse_order_xml`` reads it with ElementTree instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from tether.payments.models import Order

Texts = Mapping[str, str | None]  # an element's texts by the local names of its children

#: A text ElementTree gives as it is: no markup, no ``\r`` (XML reads it as a newline), no control
#: character XML forbids; the other characters it forbids are ``_FORBIDDEN``.
_TEXT = r"[^<>&\r\x00-\x08\x0b\x0c\x0e-\x1f]+"
_FORBIDDEN = re.compile(r"[\ud800-\udfff\ufffe\uffff]")  # kept out of _TEXT: slow to compile


def _read(tag: str) -> str:
    return f"<{tag}>(?P<{tag}>{_TEXT})</{tag}>"


def _skip(tag: str) -> str:
    return f"<{tag}>{_TEXT}</{tag}>"


def _maybe(tag: str) -> str:
    return f"(?:{_read(tag)})?"


_HEAD = "".join(
    (
        "<oppdrag-110>",
        *map(_read, ("kodeAksjon", "kodeEndring", "kodeFagomraade", "fagsystemId")),
        _skip("utbetFrekvens"),
        _read("oppdragGjelderId"),
        _skip("datoOppdragGjelderFom"),
        _read("saksbehId"),
        "<avstemming-115>",
        _skip("kodeKomponent"),
        _read("nokkelAvstemming"),
        _read("tidspktMelding"),
        "</avstemming-115><oppdrags-enhet-120>",
        *map(_skip, ("typeEnhet", "enhet", "datoEnhetFom")),
        "</oppdrags-enhet-120>",
    )
)
_LINE = re.compile(
    "".join(
        (
            "<oppdrags-linje-150>",
            _read("kodeEndringLinje"),
            _maybe("kodeStatusLinje"),
            _maybe("datoStatusFom"),
            *map(_read, ("vedtakId", "delytelseId", "kodeKlassifik")),
            _skip("datoKlassifikFom"),
            *map(_read, ("datoVedtakFom", "datoVedtakTom", "sats")),
            _skip("fradragTillegg"),
            _read("typeSats"),
            _skip("brukKjoreplan"),
            *map(_read, ("saksbehId", "utbetalesTilId", "henvisning")),
            _maybe("refFagsystemId"),
            _maybe("refDelytelseId"),
            f"<attestant-180>{_read('attestantId')}</attestant-180>",
            f"(?:<vedtakssats-157>{_read('vedtakssats')}</vedtakssats-157>)?",
            "</oppdrags-linje-150>",
        )
    )
)


class OrderForm:
    """The form for one declaration and root element, as ``oppdrag`` writes them. It finds the
    texts; ``build`` (``oppdrag``'s, which the tree's texts go through too) makes the order of
    them, so both readers convert alike."""

    def __init__(
        self,
        declaration: str,
        root_start: str,
        root_end: str,
        build: Callable[[Texts, list[Texts]], Order],
    ) -> None:
        self._head = re.compile(re.escape(declaration + root_start) + _HEAD)
        self._tail = "</oppdrag-110>" + root_end
        self._build = build

    def read(self, raw: str | bytes) -> Order | None:
        """The order, or None when ``raw`` is not in this form (bytes not UTF-8 are not); a bad
        value (a date, a number) raises ``build``'s ``ValueError``."""
        if isinstance(raw, bytes):
            try:
                raw = raw.decode()
            except UnicodeDecodeError:
                return None
        head = self._head.match(raw)
        if head is None or (not raw.isascii() and _FORBIDDEN.search(raw) is not None):
            return None
        lines: list[Texts] = []
        pos = head.end()
        while (line := _LINE.match(raw, pos)) is not None:
            lines.append(line.groupdict())
            pos = line.end()
        if raw[pos:] != self._tail:
            return None
        return self._build(head.groupdict(), lines)
