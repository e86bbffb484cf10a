"""``record``: a frozen dataclass built by a cheaper ``__init__``, otherwise the same."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field
from enum import Enum, StrEnum

import pytest

from tether.core.records import member, quick_init, record


@record
class Fast:
    a: int
    b: str = "b"
    c: list[int] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class Slow:
    a: int
    b: str = "b"
    c: list[int] = field(default_factory=list)


def test_a_record_is_what_the_frozen_dataclass_would_be() -> None:
    fast, slow = Fast(a=1, c=[2]), Slow(a=1, c=[2])
    assert vars(fast) == vars(slow) and list(vars(fast)) == list(vars(slow))
    assert fast == Fast(a=1, b="b", c=[2]) and fast != Fast(a=2, c=[2])
    assert repr(fast) == repr(slow).replace("Slow", "Fast")
    assert hash(Fast(a=1, c=None)) == hash(Fast(a=1, c=None))  # type: ignore[arg-type]
    assert [*inspect.signature(Fast).parameters] == [*inspect.signature(Slow).parameters]
    assert Fast(a=1).c == [] and Fast(a=1).c is not Fast(a=1).c  # a fresh default each time
    assert dataclasses.replace(fast, b="x") == Fast(a=1, b="x", c=[2])


def test_a_record_stays_frozen_and_keyword_only() -> None:
    fast = Fast(a=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.a = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        Fast(1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Fast(a=1, d=2)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Fast()  # type: ignore[call-arg]


def test_order_is_kept() -> None:
    @record(order=True)
    class Ordered:
        x: int

    assert Ordered(x=1) < Ordered(x=2)


def test_quick_init_refuses_what_its_init_would_not_do() -> None:
    @dataclass
    class Mutable:
        x: int

    @dataclass(frozen=True, slots=True)
    class Slotted:
        x: int

    @dataclass(frozen=True)
    class Posted:
        x: int

        def __post_init__(self) -> None:
            pass

    @dataclass(frozen=True)
    class Hidden:
        x: int
        y: int = field(init=False, default=0)

    for cls in (Mutable, Slotted, Posted, Hidden):
        with pytest.raises(TypeError):
            quick_init(cls)


class _Code(StrEnum):
    A, B = "a", "b"


class _Number(Enum):
    ONE = 1


@pytest.mark.parametrize(
    ("kind", "value"), [(_Code, "a"), (_Code, "b"), (_Number, 1), (_Number, 1.0), (_Code, _Code.A)]
)
def test_member_is_the_enum_called(kind: type[Enum], value: object) -> None:
    assert member(kind, value) is kind(value)


@pytest.mark.parametrize(
    ("kind", "value"), [(_Code, "c"), (_Code, None), (_Code, ["a"]), (_Number, "1")]
)
def test_a_value_that_is_no_member_fails_as_the_enum_does(kind: type[Enum], value: object) -> None:
    with pytest.raises(ValueError) as expected:
        kind(value)
    with pytest.raises(ValueError) as found:
        member(kind, value)
    assert str(found.value) == str(expected.value)
