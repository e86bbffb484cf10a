"""The datahub simulator behaves like the adapter contract says, and each fault is observable."""

from __future__ import annotations

import itertools
import socket
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI, Request

from tether.accountingpoints.client import parse_accounting_point
from tether.accountingpoints.domain import is_local_midnight, is_valid_gsrn, make_gsrn
from tether.accountingpoints.errors import InvalidAccountingPointData
from tether.accountingpoints.reference import ENERGY_SUPPLIERS, GRID_AREAS
from tether.accountingpoints.simulator import Datahub, DatahubFault, start_simulator
from tether.core.events import parse_event
from tether.core.simulator import FaultMode, SimulatorServer, SimulatorState

OSLO = ZoneInfo("Europe/Oslo")
TOKEN = "sim-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TODAY = date(2026, 11, 23)
TIMELINES = ("end_user", "energy_supplier", "metering_grid_area", "energy_direction")
EARLY = "2000-01-01T00:00:00Z"


def _parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment)


@pytest.fixture(scope="module")
def simulator() -> Iterator[tuple[SimulatorServer, Datahub]]:
    server, hub = start_simulator(count=30, seed=7, token=TOKEN)
    yield server, hub
    server.stop()


@pytest.fixture
def sim(simulator: tuple[SimulatorServer, Datahub]) -> Iterator[tuple[SimulatorServer, Datahub]]:
    """The shared simulator, with faults and stats reset after each test."""
    server, _ = simulator
    yield simulator
    server.set_mode(FaultMode.NONE)
    server.state.slow_s = 15.0
    server.state.calls.clear()


def _get(server: SimulatorServer, gsrn: str, **params: str) -> httpx.Response:
    query = {"valid_from": EARLY, **params}
    return httpx.get(f"{server.url}/accounting_point/{gsrn}", params=query, headers=AUTH)


def _set_fault(server: SimulatorServer, mode: str, **extra: float) -> None:
    response = httpx.put(
        f"{server.control_url}/faults", json={"mode": mode, **extra}, headers=server.control_headers
    )
    assert response.status_code == 200, response.text


# --- the generated datahub ---------------------------------------------------------------------


def test_generated_gsrns_are_predictable_and_valid() -> None:
    hub = Datahub.generate(25, seed=3, today=TODAY)
    assert hub.gsrns == [make_gsrn("70705750", n) for n in range(1, 26)]
    assert all(is_valid_gsrn(g) for g in hub.gsrns)


def test_every_generated_timeline_is_contiguous_at_local_midnight_and_open_ended() -> None:
    for tz in ("Europe/Oslo", "America/New_York"):
        zone = ZoneInfo(tz)
        hub = Datahub.generate(200, seed=11, tz=tz, today=TODAY)
        for gsrn in hub.gsrns:
            record = hub.record(gsrn)
            assert record is not None
            parse_accounting_point(record, gsrn=gsrn, tz=zone)  # runs domain.validate
            for key in TIMELINES:
                periods = record.get(key)
                if periods is None:
                    continue
                assert periods, f"{gsrn} {key} is empty"
                for before, after in itertools.pairwise(periods):
                    assert before["valid_to"] == after["valid_from"]
                assert periods[-1]["valid_to"] is None
                bounds = [p["valid_from"] for p in periods] + [p["valid_to"] for p in periods]
                assert all(is_local_midnight(_parse(b), zone) for b in bounds if b is not None)


def test_generated_datahub_has_the_realistic_mix() -> None:
    hub = Datahub.generate(200, seed=1, today=TODAY)
    records = [r for g in hub.gsrns if (r := hub.record(g)) is not None]
    users = [u for r in records for u in r["end_user"]]
    assert {u["entity_type"] for u in users} == {"person", "organisation"}
    for u in users:
        expected = "organisation" if len(u["business_id"]) == 9 else "person"
        assert u["entity_type"] == expected
        assert len(u["business_id"]) in (9, 11)
        assert expected == "person" or u["business_id"][0] != "0"
    assert any(len(r["end_user"]) > 1 for r in records), "no moves"
    assert any(len(r["energy_supplier"]) > 1 for r in records), "no supplier switches"
    assert any(len(r["metering_grid_area"]) > 1 for r in records), "no grid area change"
    assert {s["business_id"] for r in records for s in r["energy_supplier"]} <= set(
        ENERGY_SUPPLIERS
    )
    assert {a["business_id"] for r in records for a in r["metering_grid_area"]} <= set(GRID_AREAS)
    directions = [d["direction"] for r in records for d in r.get("energy_direction", [])]
    assert ["consumption", "production"] in directions and ["consumption"] in directions
    assert any("energy_direction" not in r for r in records)
    located = [r for r in records if "latitude" in r]
    assert len(records) / 2 < len(located) < len(records), "most, not all, have a position"
    assert all("longitude" in r for r in located)


def test_same_seed_gives_the_same_datahub_and_another_seed_does_not() -> None:
    one = Datahub.generate(40, seed=5, today=TODAY)
    again = Datahub.generate(60, seed=5, today=TODAY)
    other = Datahub.generate(40, seed=6, today=TODAY)
    assert [one.record(g) for g in one.gsrns] == [again.record(g) for g in one.gsrns]
    assert [one.record(g) for g in one.gsrns] != [other.record(g) for g in one.gsrns]


def test_answer_holds_only_periods_overlapping_the_window() -> None:
    hub = Datahub.generate(100, seed=2, today=TODAY)
    gsrn = next(g for g in hub.gsrns if len((hub.record(g) or {})["energy_supplier"]) >= 3)
    full = hub.record(gsrn)
    assert full is not None
    second = full["energy_supplier"][1]
    start, end = _parse(second["valid_from"]), _parse(second["valid_to"])
    windowed = hub.answer(gsrn, start, end)
    assert windowed is not None
    assert windowed["energy_supplier"] == [second]  # neighbours only touch the window
    open_ended = hub.answer(gsrn, end, None)
    assert open_ended is not None
    assert open_ended["energy_supplier"] == full["energy_supplier"][2:]
    assert hub.answer(make_gsrn("70705750", 999), start, None) is None


def test_put_installs_the_exact_record() -> None:
    hub = Datahub.generate(1, today=TODAY)
    gsrn = make_gsrn("70705750", 500)
    record: dict[str, Any] = {"gsrn": gsrn, "end_user": [], "energy_supplier": []}
    hub.put(gsrn, record)
    assert hub.record(gsrn) == record
    assert gsrn in hub.gsrns


@pytest.mark.parametrize(
    ("kind", "key"),
    [
        ("supplier_switch", "energy_supplier"),
        ("move", "end_user"),
        ("grid_area_change", "metering_grid_area"),
    ],
)
def test_mutate_closes_the_open_period_tomorrow_and_opens_a_new_one(kind: str, key: str) -> None:
    hub = Datahub.generate(10, seed=4, today=TODAY)
    gsrn = hub.gsrns[0]
    before = hub.record(gsrn)
    assert before is not None
    after = hub.mutate(gsrn, kind)
    tomorrow = datetime(2026, 11, 24, tzinfo=OSLO).isoformat()
    assert after[key][:-2] == before[key][:-1]
    assert after[key][-2] == {**before[key][-1], "valid_to": tomorrow}
    assert after[key][-1]["valid_from"] == tomorrow and after[key][-1]["valid_to"] is None
    assert after[key][-1]["business_id"] != before[key][-1]["business_id"]
    second = hub.mutate(gsrn, kind)  # same day again: the next day, still valid
    assert second[key][-1]["valid_from"] == datetime(2026, 11, 25, tzinfo=OSLO).isoformat()
    parse_accounting_point(second, gsrn=gsrn, tz=OSLO)
    assert hub.record(gsrn) == second


def test_relocate_changes_only_the_position() -> None:
    hub = Datahub.generate(10, seed=4, today=TODAY)
    gsrn = hub.gsrns[0]
    before = hub.record(gsrn)
    assert before is not None
    after = hub.mutate(gsrn, "relocate")
    assert (after["latitude"], after["longitude"]) != (
        before.get("latitude"),
        before.get("longitude"),
    )
    assert {k: v for k, v in after.items() if k not in ("latitude", "longitude")} == {
        k: v for k, v in before.items() if k not in ("latitude", "longitude")
    }


def test_mutate_rejects_unknown_kinds_and_gsrns() -> None:
    hub = Datahub.generate(2, today=TODAY)
    with pytest.raises(ValueError):
        hub.mutate(hub.gsrns[0], "teleport")
    with pytest.raises(KeyError):
        hub.mutate(make_gsrn("70705750", 77), "move")


# --- the HTTP surface ----------------------------------------------------------------------------


def test_missing_or_wrong_token_is_401_text(sim: tuple[SimulatorServer, Datahub]) -> None:
    server, hub = sim
    url = f"{server.url}/accounting_point/{hub.gsrns[0]}"
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": TOKEN}):
        response = httpx.get(url, params={"valid_from": EARLY}, headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("gsrn", ["12345", "70705750000000001x", "7070575000000000180"])
def test_malformed_gsrn_is_400_text(sim: tuple[SimulatorServer, Datahub], gsrn: str) -> None:
    response = _get(sim[0], gsrn)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("valid_from", [None, "", "yesterday", "2024-01-01", "2024-01-01T00:00:00"])
def test_missing_or_unparseable_valid_from_is_400(
    sim: tuple[SimulatorServer, Datahub], valid_from: str | None
) -> None:
    server, hub = sim
    params = {} if valid_from is None else {"valid_from": valid_from}
    url = f"{server.url}/accounting_point/{hub.gsrns[0]}"
    response = httpx.get(url, params=params, headers=AUTH)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/plain")


def test_unknown_gsrn_is_404_text(sim: tuple[SimulatorServer, Datahub]) -> None:
    response = _get(sim[0], make_gsrn("70705750", 9999))
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/plain")


def test_known_gsrn_answers_the_windowed_record(sim: tuple[SimulatorServer, Datahub]) -> None:
    server, hub = sim
    gsrn = hub.gsrns[3]
    since = datetime(2026, 1, 1, tzinfo=OSLO)
    response = _get(server, gsrn, valid_from=since.isoformat())
    assert response.status_code == 200
    assert response.json() == hub.answer(gsrn, since, None)
    parse_accounting_point(response.json(), gsrn=gsrn, tz=OSLO)


def test_stats_count_calls_per_gsrn_until_reset(sim: tuple[SimulatorServer, Datahub]) -> None:
    server, hub = sim
    control = server.control_headers
    httpx.delete(f"{server.control_url}/stats", headers=control)
    for _ in range(3):
        _get(server, hub.gsrns[0])
    _get(server, hub.gsrns[1])
    stats = httpx.get(f"{server.control_url}/stats", headers=control).json()
    assert stats["calls"] == {hub.gsrns[0]: 3, hub.gsrns[1]: 1}
    assert stats["total"] == 4
    httpx.delete(f"{server.control_url}/stats", headers=control)
    assert httpx.get(f"{server.control_url}/stats", headers=control).json()["total"] == 0
    server.set_mode(FaultMode.ERROR_500)  # a call a fault answers was received all the same
    assert _get(server, hub.gsrns[0]).status_code == 500
    assert httpx.get(f"{server.control_url}/stats", headers=control).json()["total"] == 1


def test_fault_modes_include_every_core_mode() -> None:
    assert {str(m) for m in FaultMode} <= {str(m) for m in DatahubFault}


def test_down_refuses_connections_and_none_brings_it_back(
    sim: tuple[SimulatorServer, Datahub],
) -> None:
    server, hub = sim
    _set_fault(server, "down")
    with pytest.raises(httpx.ConnectError):
        _get(server, hub.gsrns[0])
    faults = httpx.get(f"{server.control_url}/faults", headers=server.control_headers)
    assert faults.json()["mode"] == "down"
    _set_fault(server, "none")
    assert _get(server, hub.gsrns[0]).status_code == 200


def test_slow_outlasts_a_short_client_timeout(sim: tuple[SimulatorServer, Datahub]) -> None:
    server, hub = sim
    _set_fault(server, "slow", slow_ms=500)
    url = f"{server.url}/accounting_point/{hub.gsrns[0]}"
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(url, params={"valid_from": EARLY}, headers=AUTH, timeout=0.05)


def test_500_answers_a_text_server_error(sim: tuple[SimulatorServer, Datahub]) -> None:
    server, hub = sim
    _set_fault(server, "500")
    response = _get(server, hub.gsrns[0])
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/plain")


def test_garbage_answers_200_that_is_not_json(sim: tuple[SimulatorServer, Datahub]) -> None:
    server, hub = sim
    _set_fault(server, "garbage")
    response = _get(server, hub.gsrns[0])
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()


def test_unknown_fields_are_added_and_tolerated(sim: tuple[SimulatorServer, Datahub]) -> None:
    server, hub = sim
    _set_fault(server, "unknown_fields")
    gsrn = hub.gsrns[0]
    body = _get(server, gsrn).json()
    assert set(body) - {"gsrn", "latitude", "longitude", *TIMELINES}
    assert all(
        set(p) - {"business_id", "entity_type", "valid_from", "valid_to"} for p in body["end_user"]
    )
    data = parse_accounting_point(body, gsrn=gsrn, tz=OSLO)
    assert "end_user[].x_source" in data.unknown_fields


def test_contract_violation_breaks_the_required_shape(sim: tuple[SimulatorServer, Datahub]) -> None:
    server, hub = sim
    _set_fault(server, "contract_violation")
    gsrn = hub.gsrns[0]
    body = _get(server, gsrn).json()
    assert "metering_grid_area" not in body
    assert isinstance(body["gsrn"], int)
    with pytest.raises(InvalidAccountingPointData):
        parse_accounting_point(body, gsrn=gsrn, tz=OSLO)


@pytest.mark.parametrize(("key", "value"), [("latitude", 95.0), ("longitude", -180.5)])
def test_coordinates_outside_wgs84_are_rejected_before_the_database(
    sim: tuple[SimulatorServer, Datahub], key: str, value: float
) -> None:
    server, hub = sim
    gsrn = hub.gsrns[0]
    body = {**_get(server, gsrn).json(), "latitude": 59.9, "longitude": 10.7, key: value}
    with pytest.raises(InvalidAccountingPointData, match=key):
        parse_accounting_point(body, gsrn=gsrn, tz=OSLO)


def test_overlapping_returns_two_open_supplier_periods(
    sim: tuple[SimulatorServer, Datahub],
) -> None:
    server, hub = sim
    _set_fault(server, "overlapping")
    gsrn = hub.gsrns[0]
    body = _get(server, gsrn).json()
    assert sum(p["valid_to"] is None for p in body["energy_supplier"]) == 2
    with pytest.raises(InvalidAccountingPointData, match="overlap"):
        parse_accounting_point(body, gsrn=gsrn, tz=OSLO)


def test_not_midnight_moves_a_bound_to_1337(sim: tuple[SimulatorServer, Datahub]) -> None:
    server, hub = sim
    _set_fault(server, "not_midnight")
    gsrn = hub.gsrns[0]
    body = _get(server, gsrn).json()
    bound = _parse(body["end_user"][0]["valid_from"]).astimezone(OSLO)
    assert (bound.hour, bound.minute) == (13, 37)
    with pytest.raises(InvalidAccountingPointData, match="midnight"):
        parse_accounting_point(body, gsrn=gsrn, tz=OSLO)


def test_unknown_enum_sends_storage_direction(sim: tuple[SimulatorServer, Datahub]) -> None:
    server, hub = sim
    _set_fault(server, "unknown_enum")
    for gsrn in hub.gsrns:  # with and without energy_direction in the stored record
        body = _get(server, gsrn).json()
        assert body["energy_direction"][0]["direction"] == ["storage"]
    with pytest.raises(InvalidAccountingPointData):
        parse_accounting_point(body, gsrn=gsrn, tz=OSLO)


def test_unknown_fault_mode_is_refused(sim: tuple[SimulatorServer, Datahub]) -> None:
    server = sim[0]
    url, headers = f"{server.control_url}/faults", server.control_headers
    response = httpx.put(url, json={"mode": "on_fire"}, headers=headers)
    assert response.status_code == 422


# --- the control port ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/accounting-points", None),
        ("PUT", "/accounting-points/{gsrn}", {"gsrn": "{gsrn}"}),
        ("PUT", "/accounting-points/{gsrn}/delay", {"delay_ms": 5000}),
        ("POST", "/accounting-points/{gsrn}/changes", {"kind": "move", "emit": False}),
        ("POST", "/events", {"gsrns": []}),
    ],
)
def test_the_datahub_control_routes_need_the_control_token(
    sim: tuple[SimulatorServer, Datahub], method: str, path: str, body: dict[str, Any] | None
) -> None:
    server, hub = sim
    gsrn = hub.gsrns[3]
    url, before = server.control_url + path.format(gsrn=gsrn), hub.record(gsrn)
    for wrong in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Bearer {TOKEN}"}):
        answer = httpx.request(method, url, json=body, headers=wrong)
        assert answer.status_code == 401, (wrong, answer.text)
    assert hub.record(gsrn) == before and hub.delays == {}  # nothing changed
    if method == "GET":
        answer = httpx.get(url, headers=server.control_headers)
        assert answer.status_code == 200 and answer.json()["total"] == 30


def test_control_lists_gsrns_in_pages(sim: tuple[SimulatorServer, Datahub]) -> None:
    server, hub = sim
    page = httpx.get(
        f"{server.control_url}/accounting-points",
        params={"limit": 10, "offset": 25},
        headers=server.control_headers,
    )
    assert page.json() == {"total": 30, "limit": 10, "offset": 25, "gsrns": hub.gsrns[25:30]}


def test_control_installs_a_record_the_data_port_serves(
    sim: tuple[SimulatorServer, Datahub],
) -> None:
    server, _ = sim
    gsrn = make_gsrn("70705751", 1)
    since = "2025-01-01T00:00:00+01:00"
    record = {
        "gsrn": gsrn,
        "end_user": [{"business_id": "912345678", "valid_from": since, "valid_to": None}],
        "energy_supplier": [
            {"business_id": "7080005051237", "valid_from": since, "valid_to": None}
        ],
        "metering_grid_area": [
            {"business_id": "10YNO-1--------2", "valid_from": since, "valid_to": None}
        ],
    }
    url = f"{server.control_url}/accounting-points/{gsrn}"
    assert httpx.put(url, json=record, headers=server.control_headers).status_code == 200
    assert _get(server, gsrn).json() == record


def test_control_changes_are_served_at_once_though_answers_are_cached(
    sim: tuple[SimulatorServer, Datahub],
) -> None:
    server, hub = sim
    gsrn = hub.gsrns[4]
    first = _get(server, gsrn).json()
    assert _get(server, gsrn).json() == first  # a second read: from the cache
    changes = f"{server.control_url}/accounting-points/{gsrn}/changes"
    control = server.control_headers
    changed = httpx.post(changes, json={"kind": "supplier_switch", "emit": False}, headers=control)
    changed = changed.json()
    assert _get(server, gsrn).json() == changed["record"] != first
    replaced = {**changed["record"], "latitude": 60.0}
    httpx.put(f"{server.control_url}/accounting-points/{gsrn}", json=replaced, headers=control)
    assert _get(server, gsrn).json() == replaced


def test_other_paths_and_methods_are_text_errors(sim: tuple[SimulatorServer, Datahub]) -> None:
    server, hub = sim
    other = httpx.get(f"{server.url}/accounting_points", headers=AUTH)
    assert (other.status_code, other.text) == (404, "Not Found")
    url = f"{server.url}/accounting_point/{hub.gsrns[0]}"
    post = httpx.post(url, params={"valid_from": EARLY}, headers=AUTH)
    assert post.status_code == 405 and post.headers["content-type"].startswith("text/plain")


def test_control_change_of_unknown_gsrn_or_kind_is_refused(
    sim: tuple[SimulatorServer, Datahub],
) -> None:
    server, hub = sim
    unknown = f"{server.control_url}/accounting-points/{make_gsrn('70705750', 4242)}/changes"
    control = server.control_headers
    assert httpx.post(unknown, json={"kind": "move"}, headers=control).status_code == 404
    known = f"{server.control_url}/accounting-points/{hub.gsrns[0]}/changes"
    assert httpx.post(known, json={"kind": "teleport"}, headers=control).status_code == 422


# --- events ------------------------------------------------------------------------------------


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """A tiny event receiver over a real socket; yields its URL and what it received."""
    received: list[tuple[dict[str, str], bytes]] = []
    app = FastAPI()

    @app.post("/api/v1/events", status_code=202)
    async def events(request: Request) -> dict[str, str]:
        received.append((dict(request.headers), await request.body()))
        return {}

    server = SimulatorServer(app, FastAPI(), SimulatorState()).start_in_thread()
    yield f"{server.url}/api/v1/events", received
    server.stop()


def test_change_emits_a_thin_event_to_the_webhook(
    webhook: tuple[str, list[tuple[dict[str, str], bytes]]],
) -> None:
    url, received = webhook
    server, hub = start_simulator(count=3, webhook_url=url, webhook_token="hook-token")
    try:
        gsrn = hub.gsrns[1]
        changes = f"{server.control_url}/accounting-points/{gsrn}/changes"
        control = server.control_headers
        response = httpx.post(changes, json={"kind": "supplier_switch"}, headers=control)
        assert response.json()["emitted"]["webhook"] == "sent"
        assert len(response.json()["record"]["energy_supplier"]) >= 2
        httpx.post(changes, json={"kind": "move", "emit": False}, headers=control)
    finally:
        server.stop()
    assert len(received) == 1
    headers, body = received[0]
    assert headers["content-type"] == "application/cloudevents+json"
    assert headers["authorization"] == "Bearer hook-token"
    event = parse_event(body)
    assert (event.type, event.source) == (
        "no.datahub.accounting_point.changed",
        "/simulator/datahub",
    )
    assert event.subject == gsrn and event.data == {"gsrn": gsrn}


def test_events_route_emits_a_batch_without_changing_anything(
    webhook: tuple[str, list[tuple[dict[str, str], bytes]]],
) -> None:
    url, received = webhook
    server, hub = start_simulator(count=3, webhook_url=url)
    try:
        before = [hub.record(g) for g in hub.gsrns]
        events, control = f"{server.control_url}/events", server.control_headers
        outcome = httpx.post(events, json={"gsrns": hub.gsrns[:2]}, headers=control).json()
        assert [hub.record(g) for g in hub.gsrns] == before
    finally:
        server.stop()
    assert outcome == {"events": 2, "webhook": "sent", "nats": "off"}
    headers, body = received[0]
    assert headers["authorization"] == "Bearer dev-events-token"
    assert headers["content-type"] == "application/cloudevents-batch+json"
    assert '"subject":"' + hub.gsrns[1] in body.decode()


def test_a_failing_webhook_is_reported_not_fatal() -> None:
    with socket.socket() as probe:  # a free port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{probe.getsockname()[1]}/api/v1/events"
    server, hub = start_simulator(count=2, webhook_url=dead_url)
    try:
        changes = f"{server.control_url}/accounting-points/{hub.gsrns[0]}/changes"
        response = httpx.post(changes, json={"kind": "move"}, headers=server.control_headers)
    finally:
        server.stop()
    assert response.status_code == 200
    assert response.json()["emitted"]["webhook"] == "failed"
    assert len(response.json()["record"]["end_user"]) >= 2


async def test_events_are_published_to_nats_jetstream(nats_url: str, js: Any) -> None:
    stream, subject = "SIMTEST", "simtest.accounting_point.changed"
    server, hub = start_simulator(
        count=3, nats_url=nats_url, nats_stream=stream, nats_subject=subject
    )
    try:
        async with httpx.AsyncClient(headers=server.control_headers) as http:
            changes = f"{server.control_url}/accounting-points/{hub.gsrns[2]}/changes"
            first = await http.post(changes, json={"kind": "grid_area_change"})
            second = await http.post(f"{server.control_url}/events", json={"gsrns": hub.gsrns[:1]})
    finally:
        server.stop()
    assert first.json()["emitted"]["nats"] == "sent"
    assert second.json()["nats"] == "sent"
    info = await js.stream_info(stream)
    messages = [await js.get_msg(stream, seq) for seq in range(1, info.state.messages + 1)]
    events = [parse_event(m.data) for m in messages]
    assert [e.subject for e in events] == [hub.gsrns[2], hub.gsrns[0]]
    assert all(e.time is not None and e.time <= datetime.now(UTC) for e in events)
