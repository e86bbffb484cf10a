"""The accounting point HTTP API as deployed: ``create_app`` served by uvicorn on a real socket,
talking to real Postgres and to the datahub simulator over HTTP."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest

from tether.accountingpoints.domain import make_gsrn
from tether.accountingpoints.settings import AccountingPointSettings
from tether.accountingpoints.simulator import Datahub, start_simulator
from tether.core.events import make_event
from tether.core.settings import Settings
from tether.core.simulator import SimulatorServer

OSLO = ZoneInfo("Europe/Oslo")
ADAPTER_TOKEN = "api-test-adapter-token"
EVENTS_TOKEN = "api-test-events-token"
EVENTS_AUTH = {"Authorization": f"Bearer {EVENTS_TOKEN}"}
LOOKUP = "/api/v1/controllable-unit/lookup"
UNITS = "/api/v1/controllable-units"
EVENTS = "/api/v1/events"


@pytest.fixture
def sim() -> Iterator[tuple[SimulatorServer, Datahub]]:
    server, hub = start_simulator(count=8, seed=3, token=ADAPTER_TOKEN)
    yield server, hub
    server.stop()


@pytest.fixture
def api(
    db_url: str, sim: tuple[SimulatorServer, Datahub], tmp_path: Path, start_api: Any
) -> httpx.Client:
    settings = Settings(
        database_url=db_url,  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        events_token=EVENTS_TOKEN,
        db_pool_max=4,
    )
    ap_settings = AccountingPointSettings(
        adapter_url=sim[0].url,
        adapter_token=ADAPTER_TOKEN,
        adapter_timeout_s=1.0,
        adapter_retries=0,
    )
    client: httpx.Client = start_api(settings, overrides=[ap_settings])
    return client


def end_user_now(hub: Datahub, gsrn: str) -> str:
    record = hub.record(gsrn)
    assert record is not None
    now = datetime.now(OSLO)
    for p in record["end_user"]:
        ends = p["valid_to"]
        if datetime.fromisoformat(p["valid_from"]) <= now and (
            ends is None or datetime.fromisoformat(ends) > now
        ):
            return str(p["business_id"])
    raise AssertionError("no current end user")


def other_end_user(current: str) -> str:
    return "987654321" if current != "987654321" else "123456789"


def metric(client: httpx.Client, name: str, **labels: str) -> float:
    response = client.get("/metrics")
    assert response.status_code == 200
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.compile(rf"^{re.escape(name)}\{{{re.escape(wanted)}\}} (\S+)$", re.M)
    found = pattern.search(response.text)
    return float(found.group(1)) if found else 0.0


# --- lookup -------------------------------------------------------------------------------------


def test_lookup_of_an_unknown_accounting_point_fetches_it_at_once(
    api: httpx.Client, sim: tuple[SimulatorServer, Datahub]
) -> None:
    server, hub = sim
    gsrn = hub.gsrns[0]
    end_user = end_user_now(hub, gsrn)
    response = api.post(LOOKUP, json={"end_user": end_user, "accounting_point": gsrn})
    assert response.status_code == 200, response.text
    body = response.json()
    assert server.state.calls[gsrn] == 1
    ap = body["accounting_point"]
    assert ap["gsrn"] == gsrn
    assert ap["energy_supplier"] and ap["metering_grid_area"]
    assert ap["sync"]["version"] == 1 and ap["sync"]["last_synced_at"] is not None
    assert body["controllable_units"] == []
    shown = [p["value"] for p in ap["end_user"]]
    if len(end_user) == 11:  # an AP without a unit keeps no person; an organisation is kept
        assert end_user not in response.text and shown == []
    else:
        assert end_user in shown

    unit = api.post(UNITS, json={"name": "battery", "accounting_point": gsrn})
    assert unit.status_code == 201, unit.text
    cu = unit.json()
    assert cu["accounting_point"] == gsrn and cu["name"] == "battery"
    assert server.state.calls[gsrn] == 2  # the AP had no unit: fetched in full to be synced

    again = api.post(LOOKUP, json={"end_user": end_user, "accounting_point": gsrn})
    assert again.status_code == 200
    assert [u["business_id"] for u in again.json()["controllable_units"]] == [cu["business_id"]]
    assert server.state.calls[gsrn] == 2  # synced with a unit now: checked against the store
    shown = [p["value"] for p in again.json()["accounting_point"]["end_user"]]
    assert ("*" * 11 if len(end_user) == 11 else end_user) in shown
    assert end_user not in again.text or len(end_user) == 9

    by_unit = api.post(LOOKUP, json={"end_user": end_user, "controllable_unit": cu["business_id"]})
    assert by_unit.status_code == 200, by_unit.text
    assert by_unit.json()["accounting_point"]["gsrn"] == gsrn
    assert by_unit.json()["controllable_units"][0]["business_id"] == cu["business_id"]


def test_lookup_by_someone_else_is_forbidden(
    api: httpx.Client, sim: tuple[SimulatorServer, Datahub]
) -> None:
    _, hub = sim
    gsrn = hub.gsrns[1]
    stranger = other_end_user(end_user_now(hub, gsrn))
    response = api.post(LOOKUP, json={"end_user": stranger, "accounting_point": gsrn})
    assert response.status_code == 403, response.text
    assert response.json()["error"] == "EndUserMismatch"
    assert stranger not in response.text


def test_lookup_errors_are_clear(api: httpx.Client, sim: tuple[SimulatorServer, Datahub]) -> None:
    server, hub = sim
    unknown = make_gsrn("70705750", 999_999)
    response = api.post(LOOKUP, json={"end_user": "123456789", "accounting_point": unknown})
    assert response.status_code == 404, response.text
    assert "datahub does not know" in response.json()["detail"]

    malformed = api.post(LOOKUP, json={"end_user": "123456789", "accounting_point": "12345"})
    assert malformed.status_code == 422, malformed.text
    bad_check_digit = unknown[:-1] + str((int(unknown[-1]) + 1) % 10)
    bad = api.post(LOOKUP, json={"end_user": "123456789", "accounting_point": bad_check_digit})
    assert bad.status_code == 422, bad.text
    newline = api.post(LOOKUP, json={"end_user": "123456789", "accounting_point": unknown + "\n"})
    assert newline.status_code == 422, newline.text  # was a 500: int("\n") after the regex
    neither = api.post(LOOKUP, json={"end_user": "123456789"})
    assert neither.status_code == 422
    no_unit = api.post(
        LOOKUP,
        json={"end_user": "123456789", "controllable_unit": "0b7e4f4e-0000-4000-8000-000000000000"},
    )
    assert no_unit.status_code == 404
    assert server.state.calls[bad_check_digit] == 0  # rejected before any adapter call

    server.set_mode("down")
    down = api.post(LOOKUP, json={"end_user": "123456789", "accounting_point": hub.gsrns[2]})
    assert down.status_code == 503, down.text
    assert down.json()["reason"] == "upstream_unavailable"
    assert api.get(f"/api/v1/accounting-points/{hub.gsrns[2]}").status_code == 404


def test_register_unit_on_an_unknown_accounting_point(
    api: httpx.Client, sim: tuple[SimulatorServer, Datahub]
) -> None:
    server, hub = sim
    gsrn = hub.gsrns[3]
    response = api.post(
        UNITS, json={"name": "heat pump", "accounting_point": gsrn, "start_date": "2001-02-03"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["start_date"] == "2001-02-03"
    assert server.state.calls[gsrn] == 1
    ap = api.get(f"/api/v1/accounting-points/{gsrn}").json()
    assert [u["name"] for u in ap["controllable_units"]] == ["heat pump"]
    # the start date widens the window the worker must fetch: due now
    assert datetime.fromisoformat(ap["sync"]["next_sync_at"]) <= datetime.now(OSLO)
    missing = api.post(
        UNITS, json={"name": "x", "accounting_point": make_gsrn("70705750", 999_998)}
    )
    assert missing.status_code == 404
    assert api.post(UNITS, json={"name": "", "accounting_point": gsrn}).status_code == 422


def test_get_accounting_point_and_history(
    api: httpx.Client, sim: tuple[SimulatorServer, Datahub], db_url: str
) -> None:
    _, hub = sim
    gsrn = hub.gsrns[4]
    assert api.post(UNITS, json={"name": "cu", "accounting_point": gsrn}).status_code == 201
    got = api.get(f"/api/v1/accounting-points/{gsrn}")
    assert got.status_code == 200
    record = hub.record(gsrn)
    assert record is not None
    assert got.json()["latitude"] == record.get("latitude")
    assert api.get(f"/api/v1/accounting-points/{gsrn}/history").json() == []
    assert api.get(f"/api/v1/accounting-points/{hub.gsrns[5]}").status_code == 404
    assert api.get(f"/api/v1/accounting-points/{hub.gsrns[5]}/history").status_code == 404

    # a row replaced by a later sync shows up in the history
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "UPDATE ap.accounting_point SET latitude = 1, longitude = 2, "
            "recorded_at = now() - interval '1 hour' WHERE gsrn = %s",
            (gsrn,),
        )
    history = api.get(f"/api/v1/accounting-points/{gsrn}/history").json()
    assert [h["kind"] for h in history] == ["accounting_point"]


def test_a_malformed_gsrn_is_refused_as_in_a_lookup_not_reported_missing(
    api: httpx.Client, sim: tuple[SimulatorServer, Datahub]
) -> None:
    _, hub = sim
    lookup = api.post(LOOKUP, json={"end_user": "123456789", "accounting_point": "abc"})
    assert lookup.status_code == 422, lookup.text
    bad_check_digit = hub.gsrns[5][:-1] + str((int(hub.gsrns[5][-1]) + 1) % 10)
    for gsrn in ("abc", "123", "1" + hub.gsrns[5], bad_check_digit):
        for path in (
            f"/api/v1/accounting-points/{gsrn}",
            f"/api/v1/accounting-points/{gsrn}/history",
        ):
            got = api.get(path)
            assert got.status_code == 422, (path, got.text)
            assert got.json()["detail"] == lookup.json()["detail"]
            assert got.json()["error"] == "InvalidGsrn"
    unknown = api.get(f"/api/v1/accounting-points/{hub.gsrns[5]}")  # well-formed, not held
    assert unknown.status_code == 404 and "holds no accounting point" in unknown.json()["detail"]


def test_an_imported_never_synced_accounting_point_can_be_read(
    api: httpx.Client, sim: tuple[SimulatorServer, Datahub], db_url: str
) -> None:
    server, hub = sim
    gsrn = hub.gsrns[6]
    with psycopg.connect(db_url) as conn:  # as a bulk import would: no sync yet
        conn.execute("INSERT INTO ap.accounting_point (gsrn) VALUES (%s)", (gsrn,))
    got = api.get(f"/api/v1/accounting-points/{gsrn}")
    assert got.status_code == 200, got.text
    sync = got.json()["sync"]
    assert sync["last_synced_at"] is None and sync["next_sync_at"] is None
    # held but without data: the lookup fetches it, as for an unknown AP
    end_user = end_user_now(hub, gsrn)
    lookup = api.post(LOOKUP, json={"end_user": end_user, "accounting_point": gsrn})
    assert lookup.status_code == 200, lookup.text
    assert server.state.calls[gsrn] == 1
    assert lookup.json()["accounting_point"]["sync"]["last_synced_at"] is not None


# --- events -------------------------------------------------------------------------------------


def _event(gsrn: str) -> dict[str, Any]:
    return make_event(
        type_="no.datahub.accounting_point.changed",
        source="/test",
        subject=gsrn,
        data={"gsrn": gsrn},
    ).model_dump(mode="json", exclude_none=True)


def test_events_mark_held_accounting_points_and_ignore_others(
    api: httpx.Client, sim: tuple[SimulatorServer, Datahub]
) -> None:
    _, hub = sim
    held, unknown = hub.gsrns[0], hub.gsrns[1]
    assert api.post(UNITS, json={"name": "cu", "accounting_point": held}).status_code == 201
    before = api.get(f"/api/v1/accounting-points/{held}").json()["sync"]
    assert datetime.fromisoformat(before["next_sync_at"]) > datetime.now(OSLO)

    ignored_before = metric(api, "tether_ap_events_total", result="ignored")
    accepted_before = metric(api, "tether_ap_events_total", result="accepted")
    response = api.post(
        EVENTS,
        json=[_event(held), _event(unknown)],
        headers={**EVENTS_AUTH, "Content-Type": "application/cloudevents-batch+json"},
    )
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": [held], "ignored": [unknown]}
    assert metric(api, "tether_ap_events_total", result="ignored") == ignored_before + 1
    assert metric(api, "tether_ap_events_total", result="accepted") == accepted_before + 1

    after = api.get(f"/api/v1/accounting-points/{held}").json()["sync"]
    assert after["requested_at"] is not None
    assert datetime.fromisoformat(after["next_sync_at"]) <= datetime.now(OSLO)

    single = api.post(
        EVENTS,
        content=json.dumps(_event(held)),
        headers={**EVENTS_AUTH, "Content-Type": "application/cloudevents+json"},
    )
    assert single.status_code == 202 and single.json()["accepted"] == [held]


def test_events_need_the_token_and_a_valid_cloudevent(
    api: httpx.Client, sim: tuple[SimulatorServer, Datahub]
) -> None:
    _, hub = sim
    event = _event(hub.gsrns[0])
    with httpx.Client(base_url=api.base_url) as anonymous:
        assert anonymous.post(EVENTS, json=event).status_code == 401
        wrong = anonymous.post(EVENTS, json=event, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        lowercase = {"Authorization": f"bearer {EVENTS_TOKEN}"}  # the scheme is case-insensitive
        assert anonymous.post(EVENTS, json=event, headers=lowercase).status_code == 202

    no_id = {k: v for k, v in event.items() if k != "id"}
    response = api.post(EVENTS, json=no_id, headers=EVENTS_AUTH)
    assert response.status_code == 422, response.text
    assert "not a CloudEvent" in response.json()["detail"] and "id" in response.json()["detail"]
    not_json = api.post(EVENTS, content=b"[{oops", headers=EVENTS_AUTH)
    assert not_json.status_code == 422
    no_gsrn = {**event, "data": {}, "subject": None}
    nameless = api.post(EVENTS, json=[event, no_gsrn], headers=EVENTS_AUTH)
    assert nameless.status_code == 422 and "GSRN" in nameless.json()["detail"]
    too_many = api.post(EVENTS, json=[event] * 1001, headers=EVENTS_AUTH)
    assert too_many.status_code == 422 and "at most 1000" in too_many.json()["detail"]


def test_an_event_with_a_malformed_gsrn_is_refused_not_ignored(
    api: httpx.Client, sim: tuple[SimulatorServer, Datahub]
) -> None:
    """A malformed GSRN is a bad event (422 for the request, no sync), told apart from a
    well-formed GSRN tether does not hold (202, in ``ignored``)."""
    _, hub = sim
    held, unknown = hub.gsrns[6], hub.gsrns[7]
    assert api.post(UNITS, json={"name": "cu", "accounting_point": held}).status_code == 201
    batch = {**EVENTS_AUTH, "Content-Type": "application/cloudevents-batch+json"}
    single = api.post(EVENTS, json=_event("123"), headers=EVENTS_AUTH)
    assert single.status_code == 422, single.text
    assert single.json()["error"] == "InvalidGsrn"
    assert single.json()["detail"].startswith("the event names a malformed GSRN. The GSRN must")
    mixed = api.post(EVENTS, json=[_event(held), _event("123"), _event(unknown)], headers=batch)
    assert mixed.status_code == 422, mixed.text
    assert mixed.json()["detail"].startswith("event 1 (counting from 0) names a malformed GSRN.")
    assert "123" not in mixed.json()["detail"]  # the value is not echoed (may be a person id)
    assert api.get(f"/api/v1/accounting-points/{held}").json()["sync"]["requested_at"] is None
    fine = api.post(EVENTS, json=[_event(held), _event(unknown)], headers=batch)
    assert fine.status_code == 202
    assert fine.json() == {"accepted": [held], "ignored": [unknown]}


def test_events_of_another_type_are_refused_and_sync_nothing(
    api: httpx.Client, sim: tuple[SimulatorServer, Datahub]
) -> None:
    _, hub = sim
    held = hub.gsrns[0]
    assert api.post(UNITS, json={"name": "cu", "accounting_point": held}).status_code == 201
    before = api.get(f"/api/v1/accounting-points/{held}").json()["sync"]
    deleted = {**_event(held), "type": "no.datahub.accounting_point.deleted"}
    for body in (deleted, [_event(held), deleted]):
        response = api.post(EVENTS, json=body, headers=EVENTS_AUTH)
        assert response.status_code == 422, response.text
        assert "is not accepted" in response.json()["detail"]
    assert api.get(f"/api/v1/accounting-points/{held}").json()["sync"] == before


# --- operations ---------------------------------------------------------------------------------


def test_health_metrics_and_docs(api: httpx.Client) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    metrics = api.get("/metrics")
    assert metrics.status_code == 200 and "tether_ap_syncs_total" in metrics.text
    docs = api.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = api.get("/openapi.json").json()
    assert LOOKUP in spec["paths"] and EVENTS in spec["paths"]
