"""The early check for extra fields agrees with the walk that names them, at every depth."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from prometheus_client import REGISTRY
from pydantic import ConfigDict, with_config
from typing_extensions import TypedDict

from tether.core.wire import (
    MAX_FIELD_NAMES,
    MAX_NAME_CHARS,
    WireModel,
    extra_keys,
    has_unknown_fields,
    note_unknown_fields,
    unknown_fields,
)


class _Leaf(WireModel):
    a: int = 0


class _Node(WireModel):
    leaf: _Leaf | None = None
    leaves: list[_Leaf] = []
    plain: list[int] = []


@pytest.mark.parametrize(
    ("payload", "names"),
    [
        ({"plain": [1, 2]}, []),
        ({"leaf": {"a": 1}, "leaves": [{"a": 2}]}, []),
        ({"top": 1}, ["top"]),
        ({"leaf": {"a": 1, "deep": 2}}, ["leaf[].deep"]),
        ({"leaves": [{"a": 1}, {"a": 2, "late": 3}]}, ["leaves[].late"]),
    ],
)
def test_has_unknown_fields_agrees_with_unknown_fields(
    payload: dict[str, object], names: list[str]
) -> None:
    model = _Node.model_validate(payload)
    assert unknown_fields(model) == names
    assert has_unknown_fields(model) is bool(names)
    assert note_unknown_fields("test", model) == names


class _Loose(WireModel):
    anything: Any = None  # may hold a wire model: the walks look into it
    number: int = 0  # never holds one: the walks skip it


def test_a_field_typed_any_is_still_walked() -> None:
    """The walks skip only the fields whose type cannot hold a wire model."""
    inner = _Leaf.model_validate({"a": 1, "hidden": 2})
    model = _Loose.model_validate({"anything": [inner], "number": 3})
    assert unknown_fields(model) == ["anything[].hidden"]
    assert has_unknown_fields(model) is True
    assert has_unknown_fields(_Loose.model_validate({"anything": [_Leaf()], "number": 3})) is False


def test_unknown_field_names_are_capped_per_system(caplog: pytest.LogCaptureFixture) -> None:
    """A client chooses the names: 200 in one message made 200 series and 201 warnings, never
    freed. Past the cap a system's names count as ``other`` after one warning; names are cut."""
    long = "x" * 300
    model = _Node.model_validate({f"f{i:03}": i for i in range(200)} | {long: 1})
    with caplog.at_level(logging.WARNING, logger="tether.core.wire"):
        assert len(note_unknown_fields("capped", model)) == 201
        note_unknown_fields("capped", _Node.model_validate({"f000": 1, "f999": 2}))
        note_unknown_fields("capped-too", _Node.model_validate({long: 1}))
    series = {
        s.labels["field"]: s.value
        for metric in REGISTRY.collect()
        if metric.name == "tether_upstream_unknown_fields"
        for s in metric.samples
        if s.name.endswith("_total") and s.labels["system"] == "capped"
    }
    assert len(series) == MAX_FIELD_NAMES + 1 and series["other"] == 201 - MAX_FIELD_NAMES + 1
    assert series["f000"] == 2 and "f999" not in series
    # only this module's lines: another test's background thread may log meanwhile
    records = [r for r in caplog.records if r.name == "tether.core.wire"]
    assert len(records) == MAX_FIELD_NAMES + 2  # each name kept, the cap, "capped-too"
    assert "over 50 distinct unknown fields" in records[MAX_FIELD_NAMES].getMessage()
    assert records[-1].__dict__["field"] == "x" * MAX_NAME_CHARS


def test_extra_keys_of_typed_dicts_are_named_as_a_nested_models_are() -> None:
    """A list field typed as a ``TypedDict`` is not walked (its items are dicts); its extra
    keys, named by ``extra_keys``, are counted with the model's own under the same names."""

    @with_config(ConfigDict(extra="allow"))
    class Row(TypedDict):
        a: int

    class Holder(WireModel):
        rows: list[Row] = []

    plain = Holder.model_validate({"rows": [{"a": 1}, {"a": 2}]})
    assert extra_keys("rows", plain.rows, Row.__required_keys__) == []
    assert note_unknown_fields("typed-dicts", plain) == []
    model = Holder.model_validate({"top": 1, "rows": [{"a": 1, "z": 2}, {"a": 2, "b": 3, "z": 4}]})
    also = extra_keys("rows", model.rows, Row.__required_keys__)
    assert sorted(also) == ["rows[].b", "rows[].z"]
    assert note_unknown_fields("typed-dicts", model, also=also) == ["rows[].b", "rows[].z", "top"]
    assert unknown_fields(model) == ["top"]  # the walk does not look into the dicts
