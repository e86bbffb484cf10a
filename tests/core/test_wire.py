"""The early check for extra fields agrees with the walk that names them, at every depth."""

from __future__ import annotations

from typing import Any

import pytest

from tether.core.wire import WireModel, has_unknown_fields, note_unknown_fields, unknown_fields


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
