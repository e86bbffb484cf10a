"""The line rules: which ``oppdrags-linje-150`` each change needs, and the one order per message.

Each utbetaling is its own short chain of lines; see docs/payments.md for the worked examples.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import date, datetime, timedelta

from tether.payments.models import (
    FAGSYSTEM,
    MAX_ID_LENGTH,
    CaseState,
    Change,
    ChangeKind,
    ConfirmedUtbetaling,
    DagpengerMessage,
    DetailLine,
    Details,
    Diff,
    Line,
    Order,
    Period,
    Utbetaling,
    iso,
)

#: Joins hashed fields; the message parser refuses control characters, so it cannot occur.
SEPARATOR = "\x00"


def line_id(uid: str, ref: str | None, period: Period) -> str:
    """A deterministic line id: 30 hex digits (120 bits) of SHA-256 over the uid, the line it
    continues (so a chain never repeats an id) and the period. See docs/payments.md."""
    raw = (
        f"{uid}{SEPARATOR}{ref or ''}{SEPARATOR}{iso(period.fom)}{SEPARATOR}"
        f"{iso(period.tom)}{SEPARATOR}{period.belop}{SEPARATOR}{period.vedtakssats}"
    )
    return hashlib.sha256(raw.encode()).hexdigest()[:MAX_ID_LENGTH]


def _line(
    msg: DagpengerMessage,
    uid: str,
    klassekode: str,
    type_sats: str,
    *,
    kode_endring_linje: str,
    kode_status_linje: str | None,
    dato_status_fom: date | None,
    delytelse_id: str,
    ref_delytelse_id: str | None,
    ref_fagsystem_id: str | None,
    fom: date,
    tom: date,
    sats: int,
    vedtakssats: int | None,
) -> Line:
    """A line of ``msg``, with what every line of one message shares; each field named
    (``**fields`` built and merged two dicts a line, a third of what the line cost)."""
    return Line(
        uid=uid,
        kode_endring_linje=kode_endring_linje,
        kode_status_linje=kode_status_linje,
        dato_status_fom=dato_status_fom,
        vedtak_id=msg.vedtakstidspunkt.date(),
        delytelse_id=delytelse_id,
        ref_delytelse_id=ref_delytelse_id,
        ref_fagsystem_id=ref_fagsystem_id,
        kode_klassifik=str(klassekode),
        fom=fom,
        tom=tom,
        sats=sats,
        type_sats=str(type_sats),
        saksbeh_id=msg.saksbehandler,
        utbetales_til_id=msg.ident,
        henvisning=msg.behandling_id,
        attestant_id=msg.beslutter,
        vedtakssats=vedtakssats,
    )


def _new_lines(
    msg: DagpengerMessage, u: Utbetaling, periods: Sequence[Period], ref: str | None
) -> list[Line]:
    """One NY line per period in fom order, each chained to the one before."""
    lines = []
    for p in periods:
        lid = line_id(u.uid, ref, p)
        lines.append(
            _line(
                msg,
                u.uid,
                u.klassekode,
                u.type_sats,
                kode_endring_linje="NY",
                kode_status_linje=None,
                dato_status_fom=None,
                delytelse_id=lid,
                ref_delytelse_id=ref,
                ref_fagsystem_id=msg.sak_id if ref else None,
                fom=p.fom,
                tom=p.tom,
                sats=p.belop,
                vedtakssats=p.vedtakssats,
            )
        )
        ref = lid
    return lines


def _stop_line(msg: DagpengerMessage, old: ConfirmedUtbetaling, stop: date) -> Line:
    """Restates the old last line (id, period, rate) with ENDR + OPPH from ``stop``."""
    return _line(
        msg,
        old.uid,
        old.klassekode,
        old.type_sats,
        kode_endring_linje="ENDR",
        kode_status_linje="OPPH",
        dato_status_fom=stop,
        delytelse_id=old.last_line_id,
        ref_delytelse_id=None,
        ref_fagsystem_id=None,
        fom=old.last_line_fom,
        tom=old.last_line_tom,
        sats=old.last_line_sats,
        vedtakssats=old.last_line_vedtakssats,
    )


def _first_difference(old: Sequence[Period], new: Sequence[Period]) -> int:
    for i, (a, b) in enumerate(zip(old, new, strict=False)):
        if a != b:
            return i
    return min(len(old), len(new))


def _pure_shortening(old: Period, new: Period) -> bool:
    return (old.fom, old.belop, old.vedtakssats) == (new.fom, new.belop, new.vedtakssats) and (
        new.tom < old.tom
    )


def stop_date(old: Sequence[Period], new: Sequence[Period]) -> date | None:
    """The earliest date the old chain must stop paying from, or None."""
    i = _first_difference(old, new)
    found = []
    if len(new) < len(old):  # a trailing period was removed
        found.append(new[-1].tom + timedelta(days=1))
    if i < len(old) and i < len(new):
        if new[i].fom > old[i].fom:  # fom moved later
            found.append(old[i].fom)
        elif new[i].fom == old[i].fom and new[i].tom < old[i].tom:  # tom shortened
            found.append(new[i].tom + timedelta(days=1))
    return min(found, default=None)


def update_lines(msg: DagpengerMessage, u: Utbetaling, old: ConfirmedUtbetaling) -> list[Line]:
    """Stop line first (if needed), then NY lines from the first difference, ref the old last."""
    i = _first_difference(old.periods, u.periods)
    fresh = list(u.periods[i:])
    if fresh and i < len(old.periods) and _pure_shortening(old.periods[i], fresh[0]):
        fresh = fresh[1:]
    lines = _new_lines(msg, u, fresh, old.last_line_id)
    stop = stop_date(old.periods, u.periods)
    if stop is not None and not any(line.fom <= stop for line in lines):
        lines.insert(0, _stop_line(msg, old, stop))
    return lines


def change_lines(msg: DagpengerMessage, change: Change) -> list[Line]:
    """The lines one change needs (none for unchanged)."""
    u, old = change.new, change.old
    if change.kind == ChangeKind.CREATE:
        assert u is not None
        return _new_lines(msg, u, u.periods, old.last_line_id if old else None)
    if change.kind == ChangeKind.UPDATE:
        assert u is not None and old is not None
        return update_lines(msg, u, old)
    if change.kind == ChangeKind.DELETE:
        assert old is not None
        first = old.periods[0].fom if old.periods else old.last_line_fom
        return [_stop_line(msg, old, first)]
    return []


def build_order(
    msg: DagpengerMessage,
    state: CaseState | None,
    changes: Diff,
    *,
    now: datetime,
    nokkel: str | None = None,
) -> Order | None:
    """All lines of all changes in one order, stop lines first (None when nothing changed).

    ``kodeEndring`` is NY for the first order the payment system would accept on the case, else
    ENDR. ``nokkel`` (nokkelAvstemming) defaults to 30 hex digits over the case, time and lines.
    """
    every = [line for change in changes.changes for line in change_lines(msg, change)]
    # stop lines first in the whole order; each chain's own lines keep their order
    lines = [line for line in every if line.is_stop] + [line for line in every if not line.is_stop]
    if not lines:
        return None
    ids = [line.delytelse_id for line in lines]
    key = (
        nokkel
        or hashlib.sha256(
            SEPARATOR.join([FAGSYSTEM, msg.sak_id, now.isoformat(), *ids]).encode()
        ).hexdigest()[:MAX_ID_LENGTH]
    )
    return Order(
        kode_endring="ENDR" if state is not None and state.has_order_before else "NY",
        fagsystem_id=msg.sak_id,
        oppdrag_gjelder_id=msg.ident,
        saksbeh_id=msg.saksbehandler,
        nokkel_avstemming=key,
        tidspkt_melding=now,
        lines=tuple(lines),
    )


def details(order: Order, ytelse: str = FAGSYSTEM) -> Details:
    """The status's ``detaljer``: one entry per line sorted by fom, stop lines with beløp 0."""
    linjer = [
        DetailLine(
            behandling_id=line.henvisning,
            fom=line.fom,
            tom=line.tom,
            vedtakssats=line.vedtakssats,
            belop=0 if line.is_stop else line.sats,
            klassekode=line.kode_klassifik,
        )
        for line in order.lines
    ]
    return Details(ytelse=ytelse, linjer=tuple(sorted(linjer, key=lambda d: d.fom)))
