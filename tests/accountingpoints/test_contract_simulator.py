"""The simulator is the reference adapter, so it must keep the adapter contract verbatim.

Two angles: schemathesis drives the OpenAPI file against the live simulator over a real socket
(status codes, content types, the 200 schema), and jsonschema checks every answer of a generated
datahub against the contract's ``accounting_point`` schema.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup

from tether.accountingpoints.simulator import Datahub, start_simulator
from tether.core.simulator import SimulatorServer

SPEC = (
    Path(__file__).resolve().parents[3]
    / "shared"
    / "specs"
    / "accounting-point-adapter.openapi.yml"
)
TOKEN = "contract-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
OSLO = ZoneInfo("Europe/Oslo")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", re.I)
BOUNDED = settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def simulator() -> Iterator[tuple[SimulatorServer, Datahub]]:
    server, hub = start_simulator(count=40, seed=21, token=TOKEN)
    yield server, hub
    server.stop()


@pytest.fixture(scope="module")
def operation() -> Any:
    schema = schemathesis.openapi.from_path(SPEC)
    return schema["/accounting_point/{gsrn}"]["GET"]


def _drive(server: SimulatorServer, strategy: Any) -> Counter[int]:
    """Run schemathesis' cases from ``strategy`` with all its checks; count the statuses."""
    statuses: Counter[int] = Counter()

    @BOUNDED
    @given(case=strategy)
    def run(case: Any) -> None:
        response = case.call_and_validate(base_url=server.url, headers=AUTH)
        statuses[response.status_code] += 1

    run()
    return statuses


def test_known_gsrns_answer_200_conforming_to_the_contract(
    simulator: tuple[SimulatorServer, Datahub], operation: Any
) -> None:
    server, hub = simulator
    known = st.sampled_from(hub.gsrns).flatmap(
        lambda g: operation.as_strategy(path_parameters={"gsrn": g})
    )
    statuses = _drive(server, known)
    assert statuses[200] > 0
    assert set(statuses) <= {200, 400}  # 400 only for date-times Python cannot represent


def test_generated_requests_get_documented_answers(
    simulator: tuple[SimulatorServer, Datahub], operation: Any
) -> None:
    statuses = _drive(simulator[0], operation.as_strategy())
    assert statuses[404] > 0


def test_invalid_requests_are_rejected_with_text_errors(
    simulator: tuple[SimulatorServer, Datahub], operation: Any
) -> None:
    statuses = _drive(simulator[0], operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
    assert statuses[400] > 0
    assert all(400 <= status < 500 for status in statuses)


def test_unknown_fields_stay_within_the_contract(
    simulator: tuple[SimulatorServer, Datahub], operation: Any
) -> None:
    server, hub = simulator
    server.set_mode("unknown_fields")
    try:
        case = operation.Case(
            path_parameters={"gsrn": hub.gsrns[0]}, query={"valid_from": "2020-01-01T00:00:00Z"}
        )
        response = case.call_and_validate(base_url=server.url, headers=AUTH)
    finally:
        server.set_mode("none")
    assert "metering_point_category" in response.json()


def test_schemathesis_catches_a_contract_violation(
    simulator: tuple[SimulatorServer, Datahub], operation: Any
) -> None:
    """Proves the checks above are real: a broken answer fails them."""
    server, hub = simulator
    server.set_mode("contract_violation")
    try:
        case = operation.Case(
            path_parameters={"gsrn": hub.gsrns[0]}, query={"valid_from": "2020-01-01T00:00:00Z"}
        )
        with pytest.raises(FailureGroup):
            case.call_and_validate(base_url=server.url, headers=AUTH)
    finally:
        server.set_mode("none")


# --- every answer of a generated datahub against the contract schema -------------------------


def _openapi_to_jsonschema(node: Any) -> Any:
    """OpenAPI 3.0 ``nullable: true`` is not JSON Schema; turn it into a ``null`` type."""
    if isinstance(node, list):
        return [_openapi_to_jsonschema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _openapi_to_jsonschema(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") and "type" in node:
        out["type"] = [node["type"], "null"]
    return out


def _is_rfc3339(value: object) -> bool:
    if not isinstance(value, str):
        return True  # formats constrain strings only; a null is the type's business
    if not _RFC3339.fullmatch(value):
        return False
    datetime.fromisoformat(value.upper().replace("Z", "+00:00"))  # ValueError: not a date-time
    return True


@pytest.fixture(scope="module")
def contract_validator() -> jsonschema.protocols.Validator:
    spec = yaml.safe_load(SPEC.read_text())
    components = _openapi_to_jsonschema(spec["components"])
    root = {"$ref": "#/components/schemas/accounting_point", "components": components}
    formats = jsonschema.FormatChecker()
    formats.checks("date-time", raises=ValueError)(_is_rfc3339)
    validator: jsonschema.protocols.Validator = jsonschema.Draft7Validator(
        root, format_checker=formats
    )
    return validator


def test_every_answer_of_a_generated_datahub_matches_the_schema(
    contract_validator: jsonschema.protocols.Validator,
) -> None:
    hub = Datahub.generate(200, seed=9)
    windows = [
        (datetime(2000, 1, 1, tzinfo=OSLO), None),
        (datetime(2023, 6, 1, tzinfo=OSLO), datetime(2024, 6, 1, tzinfo=OSLO)),
        (datetime.combine(date.today(), datetime.min.time(), tzinfo=OSLO), None),
    ]
    checked = 0
    for gsrn in hub.gsrns:
        for start, end in windows:
            answer = hub.answer(gsrn, start, end)
            errors = [e.message for e in contract_validator.iter_errors(answer)]
            assert errors == [], f"{gsrn}: {errors}"
            checked += 1
    assert checked == 600


@pytest.mark.parametrize(
    "breakage",
    ["drop_grid_area", "gsrn_number", "bad_direction", "bad_supplier", "naive_date", "lat_200"],
)
def test_the_schema_check_rejects_broken_answers(
    contract_validator: jsonschema.protocols.Validator, breakage: str
) -> None:
    """Guards the validator itself: each of these must fail it."""
    hub = Datahub.generate(1, seed=9)
    answer = copy.deepcopy(hub.answer(hub.gsrns[0], datetime(2000, 1, 1, tzinfo=OSLO), None))
    assert answer is not None
    if breakage == "drop_grid_area":
        del answer["metering_grid_area"]
    elif breakage == "gsrn_number":
        answer["gsrn"] = int(answer["gsrn"])
    elif breakage == "bad_direction":
        answer["energy_direction"] = [
            {"direction": ["storage"], "valid_from": "2024-01-01T00:00:00Z"}
        ]
    elif breakage == "bad_supplier":
        answer["energy_supplier"][0]["business_id"] = "0123"
    elif breakage == "naive_date":
        answer["end_user"][0]["valid_from"] = "2024-01-01 00:00"
    else:
        answer["latitude"] = 200.0
    assert list(contract_validator.iter_errors(answer))
