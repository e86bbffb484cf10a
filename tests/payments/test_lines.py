"""The line rules of the spec: every worked example, create/update/delete chains, line ids,
the order header, status details and the candidate state."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from typing import Any

import pytest

from tests.payments.test_domain import DAG, FERIE, NOW, day, days, message
from tether.payments.domain import Plan, plan, split, uid_for
from tether.payments.models import (
    FAGSYSTEM,
    CaseState,
    ConfirmedUtbetaling,
    DagpengerMessage,
    Klassekode,
    Line,
    Order,
    Period,
    TypeSats,
)

L = "OLD-LAST-LINE"


def per(fom: str, tom: str, belop: int) -> Period:
    return Period(
        fom=date.fromisoformat(fom), tom=date.fromisoformat(tom), belop=belop, vedtakssats=belop
    )


def paid(*periods: Period) -> CaseState:
    """A case whose one uid (meldeperiode m1) was confirmed with ``periods``, last line L."""
    uid = uid_for(FAGSYSTEM, "SAK1", "m1", "DAGPENGER")
    last = periods[-1]
    old = ConfirmedUtbetaling(
        uid=uid,
        sak_id="SAK1",
        ident="12345678901",
        klassekode=Klassekode.DAGPENGER,
        type_sats=TypeSats.DAG,
        periods=periods,
        last_line_id=L,
        last_line_fom=last.fom,
        last_line_tom=last.tom,
        last_line_sats=last.belop,
        last_line_vedtakssats=last.vedtakssats,
    )
    return CaseState(active_uids=frozenset({uid}), confirmed={uid: old}, has_order_before=True)


def sends(*periods: Period) -> DagpengerMessage:
    """A message whose calendar days give exactly ``periods`` for meldeperiode m1."""
    found: list[dict[str, Any]] = []
    for p in periods:
        found += days(p.fom.isoformat(), p.tom.isoformat(), p.belop)
    return message(found, behandlingId="B2")


def lines_of(result: Plan) -> tuple[Line, ...]:
    assert result.order is not None
    return result.order.lines


def shape(line: Line) -> tuple[Any, ...]:
    return (
        line.kode_endring_linje,
        line.kode_status_linje,
        line.dato_status_fom,
        line.fom.day,
        line.tom.day,
        line.sats,
        line.ref_delytelse_id,
    )


def new_ref(line: Line) -> tuple[Any, ...]:
    return shape(line)[:-1]


# --- the worked examples (2024, old last line id L) -------------------------------------------


def test_example_changed_amount_is_one_ny_line_ref_l() -> None:
    [line] = lines_of(
        plan(
            sends(per("2024-06-03", "2024-06-14", 200)),
            paid(per("2024-06-03", "2024-06-14", 100)),
            now=NOW,
        )
    )
    assert shape(line) == ("NY", None, None, 3, 14, 200, L)


def test_example_fom_moved_later_stops_from_old_fom_then_ny_ref_l() -> None:
    stop, new = lines_of(
        plan(
            sends(per("2024-06-07", "2024-06-14", 100)),
            paid(per("2024-06-03", "2024-06-14", 100)),
            now=NOW,
        )
    )
    assert shape(stop) == ("ENDR", "OPPH", date(2024, 6, 3), 3, 14, 100, None)
    assert stop.delytelse_id == L
    assert shape(new) == ("NY", None, None, 7, 14, 100, L)


def test_example_shortened_tom_is_one_stop_line() -> None:
    [stop] = lines_of(
        plan(
            sends(per("2024-06-01", "2024-06-07", 100)),
            paid(per("2024-06-01", "2024-06-14", 100)),
            now=NOW,
        )
    )
    assert shape(stop) == ("ENDR", "OPPH", date(2024, 6, 8), 1, 14, 100, None)
    assert (stop.delytelse_id, stop.vedtakssats) == (L, 100)


def test_example_added_period_is_one_ny_line_ref_l() -> None:
    old = (per("2024-06-01", "2024-06-07", 100), per("2024-06-08", "2024-06-14", 200))
    [line] = lines_of(plan(sends(*old, per("2024-06-15", "2024-06-21", 300)), paid(*old), now=NOW))
    assert shape(line) == ("NY", None, None, 15, 21, 300, L)


def test_example_split_period_is_two_ny_lines_and_no_stop() -> None:
    first, second = lines_of(
        plan(
            sends(per("2024-06-01", "2024-06-14", 200), per("2024-06-15", "2024-06-28", 100)),
            paid(per("2024-06-01", "2024-06-28", 100)),
            now=NOW,
        )
    )
    assert shape(first) == ("NY", None, None, 1, 14, 200, L)
    assert shape(second) == ("NY", None, None, 15, 28, 100, first.delytelse_id)


# --- more update rules ------------------------------------------------------------------------


def test_a_removed_trailing_period_stops_from_the_day_after_the_new_last_tom() -> None:
    old = (per("2024-06-01", "2024-06-07", 100), per("2024-06-08", "2024-06-14", 200))
    [stop] = lines_of(plan(sends(old[0]), paid(*old), now=NOW))
    assert shape(stop) == ("ENDR", "OPPH", date(2024, 6, 8), 8, 14, 200, None)


def test_a_removed_middle_period_stops_then_restates_what_follows() -> None:
    old = (
        per("2024-06-01", "2024-06-07", 100),
        per("2024-06-08", "2024-06-14", 200),
        per("2024-06-15", "2024-06-21", 300),
    )
    stop, again = lines_of(plan(sends(old[0], old[2]), paid(*old), now=NOW))
    assert shape(stop)[:3] == ("ENDR", "OPPH", date(2024, 6, 8))
    assert shape(again) == ("NY", None, None, 15, 21, 300, L)


def test_a_pure_shortening_followed_by_a_new_period_skips_the_shortened_one() -> None:
    stop, line = lines_of(
        plan(
            sends(per("2024-06-01", "2024-06-07", 100), per("2024-06-10", "2024-06-14", 200)),
            paid(per("2024-06-01", "2024-06-14", 100)),
            now=NOW,
        )
    )
    assert shape(stop)[:3] == ("ENDR", "OPPH", date(2024, 6, 8))
    assert shape(line) == ("NY", None, None, 10, 14, 200, L)


def test_a_fom_moved_earlier_needs_no_stop_line() -> None:
    [line] = lines_of(
        plan(
            sends(per("2024-06-01", "2024-06-14", 100)),
            paid(per("2024-06-03", "2024-06-14", 100)),
            now=NOW,
        )
    )
    assert shape(line) == ("NY", None, None, 1, 14, 100, L)


# --- create and delete ------------------------------------------------------------------------


def test_create_chains_one_ny_line_per_period_in_fom_order() -> None:
    msg = message(days("2024-06-10", "2024-06-12", 200) + days("2024-06-03", "2024-06-05"))
    first, second = lines_of(plan(msg, None, now=NOW))
    assert (first.fom.day, first.ref_delytelse_id, first.ref_fagsystem_id) == (3, None, None)
    assert (second.fom.day, second.ref_delytelse_id, second.ref_fagsystem_id) == (
        10,
        first.delytelse_id,
        "SAK1",
    )


def test_delete_is_one_stop_line_from_the_earliest_old_fom() -> None:
    old = (per("2024-06-03", "2024-06-07", 100), per("2024-06-10", "2024-06-14", 200))
    result = plan(message([]), paid(*old), now=NOW)
    [stop] = lines_of(result)
    assert shape(stop) == ("ENDR", "OPPH", date(2024, 6, 3), 10, 14, 200, None)
    assert stop.delytelse_id == L and stop.henvisning == "B1"
    assert result.candidate.active_uids == frozenset()


def test_several_klassekoder_and_cases_build_one_order() -> None:
    msg = message(
        [
            *days("2024-06-03", "2024-06-07"),
            day("2024-06-07", 900, type_=FERIE),
            *days("2024-06-17", "2024-06-21", meldeperiode="m2"),
        ]
    )
    order = plan(msg, None, now=NOW).order
    assert order is not None
    assert [(line.kode_klassifik, line.type_sats, line.fom.day) for line in order.lines] == [
        ("DAGPENGER", "DAG", 3),
        ("DAGPENGERFERIE", "ENG", 7),
        ("DAGPENGER", "DAG", 17),
    ]
    assert len({line.uid for line in order.lines}) == 3


# --- order header, line ids, details ----------------------------------------------------------


def test_order_header_fields() -> None:
    msg = message(days("2024-06-03", "2024-06-07"), saksbehandler="Z1", beslutter="Z2")
    order = plan(msg, None, now=NOW, nokkel="KEY").order
    assert order is not None
    assert (
        order.kode_endring,
        order.fagsystem_id,
        order.oppdrag_gjelder_id,
        order.saksbeh_id,
        order.nokkel_avstemming,
        order.tidspkt_melding,
        order.kode_fagomraade,
    ) == ("NY", "SAK1", "12345678901", "Z1", "KEY", NOW, "DP")
    [line] = order.lines
    assert (line.vedtak_id, line.henvisning, line.attestant_id, line.utbetales_til_id) == (
        date(2024, 6, 1),
        "B1",
        "Z2",
        "12345678901",
    )


def test_line_ids_are_short_unique_and_deterministic() -> None:
    msg = message(
        days("2024-06-03", "2024-06-05")
        + days("2024-06-06", "2024-06-07", 200)
        + days("2024-06-10", "2024-06-12", meldeperiode="m2")
    )
    one, two = plan(msg, None, now=NOW).order, plan(msg, None, now=datetime(2025, 1, 1)).order
    assert one is not None and two is not None
    ids = [line.delytelse_id for line in one.lines]
    assert ids == [line.delytelse_id for line in two.lines]
    assert len(set(ids)) == len(ids) == 3 and all(len(i) <= 30 for i in ids)
    assert one.nokkel_avstemming != two.nokkel_avstemming
    assert len(one.nokkel_avstemming) <= 30


def test_an_amount_coming_back_gets_a_new_line_id() -> None:
    a, b = sends(per("2024-06-03", "2024-06-07", 100)), sends(per("2024-06-03", "2024-06-07", 200))
    first = plan(a, None, now=NOW)
    second = plan(b, first.candidate, now=NOW)
    third = plan(a, second.candidate, now=NOW)
    seen = [line.delytelse_id for r in (first, second, third) for line in lines_of(r)]
    assert len(set(seen)) == 3
    assert lines_of(third)[0].ref_delytelse_id == lines_of(second)[0].delytelse_id


def test_details_are_sorted_by_fom_and_stop_lines_show_zero() -> None:
    result = plan(
        sends(per("2024-06-07", "2024-06-14", 100)),
        paid(per("2024-06-03", "2024-06-14", 100)),
        now=NOW,
    )
    assert result.details is not None
    assert result.details.to_json() == {
        "ytelse": "DAGPENGER",
        "linjer": [
            {
                "behandlingId": "B2",
                "fom": "2024-06-03",
                "tom": "2024-06-14",
                "vedtakssats": 100,
                "beløp": 0,
                "klassekode": "DAGPENGER",
            },
            {
                "behandlingId": "B2",
                "fom": "2024-06-07",
                "tom": "2024-06-14",
                "vedtakssats": 100,
                "beløp": 100,
                "klassekode": "DAGPENGER",
            },
        ],
    }


# --- the candidate state ----------------------------------------------------------------------


def test_candidate_takes_new_periods_and_the_last_line() -> None:
    result = plan(
        sends(per("2024-06-01", "2024-06-14", 200), per("2024-06-15", "2024-06-28", 100)),
        paid(per("2024-06-01", "2024-06-28", 100)),
        now=NOW,
    )
    [entry] = result.candidate.confirmed.values()
    last = lines_of(result)[-1]
    assert entry.periods == (
        per("2024-06-01", "2024-06-14", 200),
        per("2024-06-15", "2024-06-28", 100),
    )
    assert (entry.last_line_id, entry.last_line_fom, entry.last_line_sats) == (
        last.delytelse_id,
        last.fom,
        100,
    )
    assert result.state is result.candidate


def test_after_a_stop_only_update_the_stopped_line_stays_last() -> None:
    result = plan(
        sends(per("2024-06-01", "2024-06-07", 100)),
        paid(per("2024-06-01", "2024-06-14", 100)),
        now=NOW,
    )
    [entry] = result.candidate.confirmed.values()
    assert (entry.last_line_id, entry.last_line_tom) == (L, date(2024, 6, 14))
    following = plan(sends(per("2024-06-01", "2024-06-03", 100)), result.candidate, now=NOW)
    assert shape(lines_of(following)[0]) == ("ENDR", "OPPH", date(2024, 6, 4), 1, 14, 100, None)


def test_a_whole_history_keeps_one_chain_per_uid() -> None:
    state: CaseState | None = None
    history = [
        [per("2024-06-03", "2024-06-07", 100)],
        [per("2024-06-03", "2024-06-07", 100), per("2024-06-10", "2024-06-14", 100)],
        [per("2024-06-04", "2024-06-07", 100)],
        [],
        [per("2024-06-03", "2024-06-07", 300)],
    ]
    previous_last: str | None = None
    for periods in history:
        result = plan(sends(*periods) if periods else message([]), state, now=NOW)
        lines = lines_of(result)
        firsts = [x for x in lines if not x.is_stop][:1]
        if previous_last is not None and firsts:
            assert firsts[0].ref_delytelse_id == previous_last
        state = result.candidate
        [entry] = state.confirmed.values()
        previous_last = entry.last_line_id
    assert state is not None and len(state.active_uids or ()) == 1


@pytest.mark.parametrize("type_", [DAG, FERIE])
def test_split_sets_typesats_from_klassekode(type_: str) -> None:
    [u] = split(message([day("2024-06-03", type_=type_)]))
    assert u.type_sats == (TypeSats.DAG if type_ == DAG else TypeSats.ENG)


def test_unchanged_uids_keep_their_entry_in_the_candidate() -> None:
    msg = message(
        days("2024-06-03", "2024-06-07") + days("2024-06-10", "2024-06-14", meldeperiode="m2")
    )
    state = plan(msg, None, now=NOW).candidate
    more = replace(
        msg,
        utbetalinger=msg.utbetalinger
        + message(days("2024-06-17", "2024-06-18", meldeperiode="m3")).utbetalinger,
    )
    result = plan(more, state, now=NOW)
    assert len(lines_of(result)) == 1
    for uid, entry in state.confirmed.items():
        assert result.candidate.confirmed[uid] == entry
    assert isinstance(result.order, Order)


def test_stop_lines_come_first_in_the_whole_order() -> None:
    msg = message(
        days("2024-06-03", "2024-06-07", meldeperiode="m1")
        + days("2024-06-10", "2024-06-14", meldeperiode="m2")
    )
    state = plan(msg, None, now=NOW).candidate
    changed = message(
        days("2024-06-03", "2024-06-07", 200, meldeperiode="m1")
        + days("2024-06-17", "2024-06-21", meldeperiode="m3")
    )
    lines = lines_of(plan(changed, state, now=NOW))
    got = [(line.is_stop, line.fom.day, line.dato_status_fom) for line in lines]
    assert got == [(True, 10, date(2024, 6, 10)), (False, 3, None), (False, 17, None)]
