"""The payment rules of the spec, one test each: parsing, split, uid, validation and diff.

The line rules and worked examples are in test_lines.py.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from tether.payments.domain import UID_NAMESPACE, diff, plan, split, uid_for, validate
from tether.payments.models import (
    FAGSYSTEM,
    CaseState,
    ChangeKind,
    ConfirmedUtbetaling,
    DagpengerMessage,
    Klassekode,
    PaymentValidationError,
    Period,
    TypeSats,
    parse_message,
)

NOW = datetime(2024, 7, 1, 12, 0, 0)
DAG, FERIE = "Dagpenger", "DagpengerFerietillegg"


def day(
    dato: str,
    belop: int = 100,
    *,
    meldeperiode: str = "m1",
    sats: int | None = None,
    type_: str = DAG,
) -> dict[str, Any]:
    return {
        "meldeperiode": meldeperiode,
        "dato": dato,
        "sats": belop if sats is None else sats,
        "utbetaltBeløp": belop,
        "utbetalingstype": type_,
    }


def days(fom: str, tom: str, belop: int = 100, **kw: Any) -> list[dict[str, Any]]:
    """Every calendar day from fom to tom."""
    start, end = date.fromisoformat(fom), date.fromisoformat(tom)
    return [
        day((start + timedelta(n)).isoformat(), belop, **kw) for n in range((end - start).days + 1)
    ]


def message(utbetalinger: list[dict[str, Any]], **fields: Any) -> DagpengerMessage:
    raw = {
        "sakId": "SAK1",
        "behandlingId": "B1",
        "ident": "12345678901",
        "vedtakstidspunktet": "2024-06-01T10:00:00",
        "utbetalinger": utbetalinger,
        **fields,
    }
    return parse_message(raw)


def rejected(call: Any, *args: Any) -> PaymentValidationError:
    with pytest.raises(PaymentValidationError) as caught:
        call(*args)
    return caught.value


# --- parsing ----------------------------------------------------------------------------------


def test_parse_ignores_unknown_fields_and_accepts_a_trailing_z() -> None:
    raw = {
        "sakId": "S",
        "behandlingId": "B",
        "ident": "1",
        "vedtakstidspunktet": "2024-06-01T10:11:12.5Z",
        "ny": {"felt": 1},
        "utbetalinger": [{**day("2024-06-03"), "ekstra": True}],
    }
    msg = parse_message(json.dumps(raw).encode())
    assert msg.vedtakstidspunkt == datetime(2024, 6, 1, 10, 11, 12, 500000)
    assert msg.vedtakstidspunkt.tzinfo is None
    assert (msg.dryrun, msg.saksbehandler, msg.beslutter) == (False, "dagpenger", "dagpenger")
    assert msg.utbetalinger[0]["utbetaltBeløp"] == 100


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"[1, 2]",
        b"\xff\xfe",
        json.dumps({"behandlingId": "B", "ident": "1", "vedtakstidspunktet": "2024-06-01T00:00"}),
        json.dumps(
            {"sakId": "S", "behandlingId": "B", "ident": "1", "vedtakstidspunktet": "yesterday"}
        ),
        json.dumps(
            {
                "sakId": "S\x00",
                "behandlingId": "B",
                "ident": "1",
                "vedtakstidspunktet": "2024-06-01T00:00",
            }
        ),
        json.dumps(
            {
                "sakId": "S",
                "behandlingId": "B",
                "ident": "1",
                "vedtakstidspunktet": "2024-06-01T00:00",
                "utbetalinger": [day("2024-06-03", -5)],
            }
        ),
        json.dumps(
            {
                "sakId": "S",
                "behandlingId": "B",
                "ident": "1",
                "vedtakstidspunktet": "2024-06-01T00:00",
                "utbetalinger": [{**day("2024-06-03"), "utbetalingstype": "Barnetrygd"}],
            }
        ),
    ],
)
def test_unparsable_messages_are_400(raw: str | bytes) -> None:
    """Malformed JSON, missing or bad fields, control characters, negative amounts, unknown
    types."""
    error = rejected(parse_message, raw)
    assert error.status_code == 400
    assert error.as_error()["statusCode"] == 400 and error.msg


BASE = {"sakId": "S", "behandlingId": "B", "ident": "1", "vedtakstidspunktet": "2024-06-01T00:00"}


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("sats", 2**32, "sats"),  # the reference's unsigned 32 bits: no amount, an overflow
        ("utbetaltBeløp", 10**20, "utbetaltBeløp"),
    ],
)
def test_an_amount_beyond_32_bits_is_400(field: str, value: int, said: str) -> None:
    """An amount of 10^20 used to be built, sent and booked OK."""
    raw = {**BASE, "utbetalinger": [{**day("2024-06-03"), field: value}]}
    error = rejected(parse_message, json.dumps(raw))
    assert error.status_code == 400 and said in error.msg
    largest = {**BASE, "utbetalinger": [{**day("2024-06-03"), field: 2**32 - 1}]}
    assert parse_message(json.dumps(largest)).utbetalinger


@pytest.mark.parametrize("value", ["yes", "true", 1])
def test_dryrun_must_be_a_json_boolean(value: object) -> None:
    """ "dryrun": "yes" was read as a dry run (and "no" would have been read as a real one)."""
    error = rejected(parse_message, json.dumps({**BASE, "dryrun": value}))
    assert error.status_code == 400 and "dryrun" in error.msg
    assert parse_message(json.dumps({**BASE, "dryrun": True})).dryrun is True


@pytest.mark.parametrize(
    "moment", ["2024-06-01T10:00:00+05:00", "2024-06-01T10:00-01:00", "2024-06-01", "10:00"]
)
def test_a_decision_time_with_an_offset_or_without_a_time_is_400(moment: str) -> None:
    """Only a local date-time (a trailing Z allowed) is read: an offset dropped silently would
    move the decision, maybe to another day."""
    raw = {"sakId": "S", "behandlingId": "B", "ident": "1", "vedtakstidspunktet": moment}
    error = rejected(parse_message, json.dumps(raw))
    assert error.status_code == 400 and "vedtakstidspunktet" in error.msg
    ok = parse_message({**raw, "vedtakstidspunktet": "2024-06-01T10:00"})
    assert ok.vedtakstidspunkt == datetime(2024, 6, 1, 10, 0)


# --- split and uid ----------------------------------------------------------------------------


def test_days_with_amount_zero_are_dropped() -> None:
    [u] = split(message([day("2024-06-03"), day("2024-06-04", 0), day("2024-06-05")]))
    assert [(p.fom, p.tom) for p in u.periods] == [
        (date(2024, 6, 3), date(2024, 6, 3)),
        (date(2024, 6, 5), date(2024, 6, 5)),
    ]


def test_friday_to_monday_is_contiguous() -> None:
    weekdays = [day(f"2024-06-{d:02d}") for d in (3, 4, 5, 6, 7, 10, 11, 12, 13, 14)]
    [u] = split(message(weekdays))
    assert u.periods == (
        Period(fom=date(2024, 6, 3), tom=date(2024, 6, 14), belop=100, vedtakssats=100),
    )


def test_saturday_to_monday_is_contiguous_and_friday_to_sunday_is_not() -> None:
    [u] = split(message([day("2024-06-08"), day("2024-06-10")]))  # Saturday, Monday
    assert [(p.fom.day, p.tom.day) for p in u.periods] == [(8, 10)]
    [u] = split(message([day("2024-06-07"), day("2024-06-09")]))  # Friday, Sunday
    assert [(p.fom.day, p.tom.day) for p in u.periods] == [(7, 7), (9, 9)]


def test_a_weekend_paid_at_another_amount_splits_the_run_it_falls_in() -> None:
    """Friday and Monday at 100 around a Saturday at 200: three periods, not Friday-Monday over
    the Saturday (overlapping periods, whose later line would stop paying the Monday)."""
    msg = message([day("2024-06-07"), day("2024-06-08", 200), day("2024-06-10")])
    [u] = split(msg)
    assert [(p.fom.day, p.tom.day, p.belop) for p in u.periods] == [
        (7, 7, 100),
        (8, 8, 200),
        (10, 10, 100),
    ]
    # an unpaid weekend day (amount 0 is dropped) still lets the run go on
    [u] = split(message([day("2024-06-07"), day("2024-06-08", 0), day("2024-06-10")]))
    assert [(p.fom.day, p.tom.day) for p in u.periods] == [(7, 10)]


def test_a_missing_weekday_splits_the_period() -> None:
    [u] = split(message([day("2024-06-06"), day("2024-06-07"), day("2024-06-11")]))
    assert [(p.fom.day, p.tom.day) for p in u.periods] == [(6, 7), (11, 11)]


def test_periods_group_by_amount_and_rate_and_sort_by_fom() -> None:
    msg = message(
        [
            day("2024-06-03"),
            day("2024-06-04"),
            day("2024-06-05", 200),
            day("2024-06-06"),
            day("2024-06-07", 100, sats=150),
        ]
    )
    [u] = split(msg)
    assert [(p.fom.day, p.tom.day, p.belop, p.vedtakssats) for p in u.periods] == [
        (3, 4, 100, 100),
        (5, 5, 200, 200),
        (6, 6, 100, 100),
        (7, 7, 100, 150),
    ]


def test_one_utbetaling_per_meldeperiode_and_klassekode() -> None:
    msg = message(
        days("2024-06-03", "2024-06-05", meldeperiode="m1")
        + days("2024-06-17", "2024-06-19", meldeperiode="m2")
        + [day("2024-06-20", 500, meldeperiode="m2", type_=FERIE)]
    )
    found = {(u.meldeperiode, u.klassekode, u.type_sats) for u in split(msg)}
    assert found == {
        ("m1", Klassekode.DAGPENGER, TypeSats.DAG),
        ("m2", Klassekode.DAGPENGER, TypeSats.DAG),
        ("m2", Klassekode.DAGPENGERFERIE, TypeSats.ENG),
    }
    for u in split(msg):
        assert u.uid == uid_for(FAGSYSTEM, "SAK1", u.meldeperiode, u.klassekode)


def test_an_empty_message_splits_into_nothing() -> None:
    assert split(message([])) == []
    assert split(message([day("2024-06-03", 0)])) == []


@pytest.mark.parametrize(
    "fields",
    [
        ("DAGPENGER", "SAK1", "m1", "DAGPENGER"),
        ("DAGPENGER", "", "", ""),
        ("DAGPENGER", "æøå/ ?#%", "😀 2024-W23", "DAGPENGERFERIE"),
    ],
)
def test_uid_is_the_uuid5_of_the_nul_joined_fields(fields: tuple[str, str, str, str]) -> None:
    """Written without uuid.uuid5 for speed: still exactly its text (stored uids depend on it)."""
    assert uid_for(*fields) == str(uuid.uuid5(UID_NAMESPACE, "\x00".join(fields)))
    with pytest.raises(ValueError, match="NUL"):
        uid_for(*fields[:3], fields[3] + "\x00")


def test_uid_is_deterministic_and_unambiguous() -> None:
    uid = uid_for("DAGPENGER", "SAK1", "m1", "DAGPENGER")
    assert uid == uid_for("DAGPENGER", "SAK1", "m1", "DAGPENGER")
    assert uuid.UUID(uid).version == 5
    # the reference concatenated without a separator: these two collided there
    assert uid_for("DAGPENGER", "SAK1", "1m", "DAGPENGER") != uid_for(
        "DAGPENGER", "SAK11", "m", "DAGPENGER"
    )
    variants = {
        uid_for(*f)
        for f in [
            ("DAGPENGER", "SAK1", "m1", "DAGPENGERFERIE"),
            ("DAGPENGER", "SAK2", "m1", "DAGPENGER"),
            ("DAGPENGER", "SAK1", "m2", "DAGPENGER"),
            ("AAP", "SAK1", "m1", "DAGPENGER"),
        ]
    }
    assert len(variants | {uid}) == 5
    with pytest.raises(ValueError):
        uid_for("DAGPENGER", "SAK\x001", "m1", "DAGPENGER")


# --- validation -------------------------------------------------------------------------------


def check(msg: DagpengerMessage, state: CaseState | None = None) -> PaymentValidationError:
    return rejected(validate, msg, split(msg), state)


def test_ids_up_to_30_chars_pass_and_31_are_400() -> None:
    validate(
        m := message([day("2024-06-03")], sakId="S" * 30, behandlingId="B" * 30), split(m), None
    )
    assert check(message([], sakId="S" * 31)).msg == "sakId kan ikke være lengre enn 30 tegn"
    assert check(message([], behandlingId="B" * 31)).status_code == 400


def test_ids_are_measured_as_the_reference_does_in_utf_16_units() -> None:
    """16 emoji are 16 code points but 32 units of a JVM string: the reference refuses them."""
    assert (
        check(message([], sakId="\U0001f600" * 16)).msg == "sakId kan ikke være lengre enn 30 tegn"
    )
    assert check(message([], behandlingId="\U0001f600" * 16)).status_code == 400
    validate(
        m := message([day("2024-06-03")], sakId="\U0001f600" * 15, behandlingId="æ" * 30),
        split(m),
        None,
    )


def test_two_periods_with_the_same_fom_are_400() -> None:
    error = check(message([day("2024-06-03", 100), day("2024-06-03", 200)]))
    assert (error.status_code, "samme fom" in error.msg) == (400, True)


def test_the_same_day_twice_with_the_same_amount_is_400() -> None:
    assert check(message([day("2024-06-03"), day("2024-06-03")])).status_code == 400


def test_a_one_off_spanning_a_year_end_is_400() -> None:
    msg = message([day("2024-12-31", 500, type_=FERIE), day("2025-01-01", 500, type_=FERIE)])
    assert "årsskiftet" in check(msg).msg
    validate(ok := message(days("2024-12-30", "2025-01-02")), split(ok), None)  # DAG may


def test_a_weekday_span_over_1100_days_is_400() -> None:
    start = date(2021, 1, 4)
    limit = message([day(start.isoformat()), day((start + timedelta(1100)).isoformat())])
    validate(limit, split(limit), None)
    over = message([day(start.isoformat()), day((start + timedelta(1101)).isoformat())])
    assert "1100" in check(over).msg


def _utbetaling(periods: tuple[Period, ...]) -> Any:
    [u] = split(message([day("2024-06-03")]))
    return replace(u, periods=periods)


@pytest.mark.parametrize(
    ("periods", "text"),
    [
        ((), "mangler perioder"),
        (
            (Period(fom=date(2024, 6, 5), tom=date(2024, 6, 3), belop=1, vedtakssats=1),),
            "fom kan ikke være etter tom",
        ),
        (
            (Period(fom=date(2024, 6, 3), tom=date(2024, 6, 3), belop=0, vedtakssats=1),),
            "beløp kan ikke være 0",
        ),
        (
            (
                Period(fom=date(2024, 6, 1), tom=date(2024, 6, 5), belop=1, vedtakssats=1),
                Period(fom=date(2024, 6, 3), tom=date(2024, 6, 5), belop=2, vedtakssats=2),
            ),
            "samme tom",
        ),
    ],
)
def test_period_rules_the_split_cannot_break_still_hold(periods: Any, text: str) -> None:
    msg = message([day("2024-06-03")])
    error = rejected(validate, msg, [_utbetaling(periods)], None)
    assert (error.status_code, text in error.msg) == (400, True)


def confirmed_of(msg: DagpengerMessage, **changes: Any) -> CaseState:
    state = plan(msg, None, now=NOW).candidate
    return replace(state, confirmed={k: replace(v, **changes) for k, v in state.confirmed.items()})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sak_id", "OTHER"),
        ("ident", "999"),
        ("klassekode", Klassekode.DAGPENGERFERIE),
        ("type_sats", TypeSats.ENG),
    ],
)
def test_a_locked_field_changed_is_400(field: str, value: Any) -> None:
    msg = message([day("2024-06-03")])
    name = {"sak_id": "sakId", "type_sats": "typeSats"}.get(field, field)
    error = check(msg, confirmed_of(msg, **{field: value}))
    assert (error.status_code, error.msg) == (400, f"Kan ikke endre '{name}'")


def test_a_new_ident_on_a_paid_uid_is_400_end_to_end() -> None:
    state = plan(message([day("2024-06-03")]), None, now=NOW).candidate
    assert check(message([day("2024-06-03")], ident="99999999999"), state).msg == (
        "Kan ikke endre 'ident'"
    )


def test_a_new_ident_on_a_uid_the_message_deletes_is_400() -> None:
    """The stop line and the order's header would carry the new ident: refused, as for a uid
    the message keeps (the reference checks the locked fields on a delete too)."""
    state = plan(message([day("2024-06-03")]), None, now=NOW).candidate
    assert check(message([], ident="99999999999"), state).msg == "Kan ikke endre 'ident'"
    other = message([day("2024-06-17", meldeperiode="m2")], ident="99999999999")
    assert check(other, state).msg == "Kan ikke endre 'ident'"
    assert plan(message([]), state, now=NOW).order is not None  # the same ident stops it


def test_deleting_an_unknown_uid_is_404() -> None:
    state = CaseState(active_uids=frozenset({"no-such-uid"}), confirmed={}, has_order_before=True)
    assert check(message([]), state).status_code == 404


# --- diff -------------------------------------------------------------------------------------


def kinds(msg: DagpengerMessage, state: CaseState | None) -> list[ChangeKind]:
    return [c.kind for c in diff(split(msg), state).changes]


def test_diff_create_update_unchanged_delete() -> None:
    first = message(
        days("2024-06-03", "2024-06-07", meldeperiode="m1")
        + days("2024-06-10", "2024-06-14", meldeperiode="m2")
        + days("2024-06-17", "2024-06-21", meldeperiode="m3")
    )
    state = plan(first, None, now=NOW).candidate
    assert kinds(first, None) == [ChangeKind.CREATE] * 3
    assert kinds(first, state) == [ChangeKind.UNCHANGED] * 3
    second = message(
        days("2024-06-03", "2024-06-07", meldeperiode="m1")
        + days("2024-06-10", "2024-06-14", 200, meldeperiode="m2")
        + days("2024-06-24", "2024-06-28", meldeperiode="m4")
    )
    assert kinds(second, state) == [
        ChangeKind.UNCHANGED,
        ChangeKind.UPDATE,
        ChangeKind.CREATE,
        ChangeKind.DELETE,
    ]


def test_nothing_changed_gives_no_order() -> None:
    msg = message(days("2024-06-03", "2024-06-07"))
    state = plan(msg, None, now=NOW).candidate
    again = plan(replace(msg, behandling_id="B2"), state, now=NOW)
    assert (again.order, again.details, again.changed) == (None, None, False)
    assert again.candidate == state


def test_an_empty_message_on_a_new_case_changes_nothing() -> None:
    result = plan(message([]), None, now=NOW)
    assert result.order is None and result.candidate.active_uids is None


def test_never_paid_differs_from_paid_with_nothing_active() -> None:
    msg = message(days("2024-06-03", "2024-06-07"))
    assert plan(msg, None, now=NOW).order.kode_endring == "NY"  # type: ignore[union-attr]
    emptied = CaseState(active_uids=frozenset(), confirmed={}, has_order_before=True)
    assert plan(msg, emptied, now=NOW).order.kode_endring == "ENDR"  # type: ignore[union-attr]


def test_a_deleted_uid_coming_back_is_a_create_chained_to_its_old_chain() -> None:
    msg = message(days("2024-06-03", "2024-06-07"))
    paid = plan(msg, None, now=NOW)
    stopped = plan(message([]), paid.candidate, now=NOW)
    [uid] = paid.uids
    assert stopped.candidate.active_uids == frozenset()
    assert stopped.candidate.confirmed[uid].periods == ()
    back = plan(msg, stopped.candidate, now=NOW)
    assert [c.kind for c in back.diff.changes] == [ChangeKind.CREATE]
    [line] = back.order.lines  # type: ignore[union-attr]
    last = paid.order.lines[-1].delytelse_id  # type: ignore[union-attr]
    assert (line.ref_delytelse_id, line.ref_fagsystem_id) == (last, "SAK1")
    assert line.delytelse_id != last


def test_confirmed_utbetaling_survives_its_json_form() -> None:
    state = plan(message(days("2024-06-03", "2024-06-07")), None, now=NOW).candidate
    for value in state.confirmed.values():
        assert ConfirmedUtbetaling.from_json(json.loads(json.dumps(value.to_json()))) == value


@pytest.mark.parametrize("value", ["NOPE", "dagpenger", ["DAGPENGER"], None])
def test_a_stored_code_that_is_no_member_fails_as_the_enum_does(value: object) -> None:
    """Stored codes are read by a lookup, not a call of the enum: a value that is none of its
    members (or cannot be one) still fails with the enum's own error."""
    state = plan(message(days("2024-06-03", "2024-06-07")), None, now=NOW).candidate
    [stored] = [v.to_json() for v in state.confirmed.values()]
    read = ConfirmedUtbetaling.from_json(stored)
    assert read.klassekode is Klassekode.DAGPENGER and read.type_sats is TypeSats.DAG
    with pytest.raises(ValueError) as expected:
        Klassekode(value)
    with pytest.raises(ValueError) as found:
        ConfirmedUtbetaling.from_json({**stored, "klassekode": value})
    assert str(found.value) == str(expected.value)
    with pytest.raises(ValueError, match="is not a valid TypeSats"):
        ConfirmedUtbetaling.from_json({**stored, "typeSats": value})
