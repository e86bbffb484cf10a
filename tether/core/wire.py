"""Tolerant reading of external payloads, shared by every client.

The reference systems broke on any field their contract did not name. tether's wire models allow
extra fields; ``note_unknown_fields`` counts them per system in one metric and logs each name
once per process, so a contract extension is visible without being fatal. A client chooses the
names (200 in one payment message made 200 series and 201 warnings, never freed): past
``MAX_FIELD_NAMES`` a system's further names are counted as ``other``, after one warning.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from datetime import datetime
from typing import Annotated, Any, Literal, get_args, get_origin

from prometheus_client import Counter
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, ValidationError
from typing_extensions import is_typeddict

logger = logging.getLogger(__name__)

UNKNOWN_FIELDS = Counter(
    "tether_upstream_unknown_fields_total",
    "Fields in external payloads that the contract does not name (ignored)",
    ["system", "field"],
)
MAX_FIELD_NAMES = 50  # distinct names per system, each a series and a warning
MAX_NAME_CHARS = 64  # a name in a label or a log line
OTHER = "other"
_seen: dict[str, set[str]] = {}  # system -> the names counted under their own label
_capped: set[str] = set()  # the systems past the cap, told once
_seen_lock = threading.Lock()


_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def parse_rfc3339(moment: str) -> datetime:
    """An RFC 3339 date-time (offset required), or ``ValueError``."""
    if not _RFC3339.fullmatch(moment):
        raise ValueError(f"not an RFC 3339 date-time: {moment!r}")
    return datetime.fromisoformat(moment.upper().replace("Z", "+00:00"))


def _rfc3339_text(value: Any) -> Any:
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError("not an RFC 3339 date-time string (yyyy-mm-ddThh:mm:ss[.f] and offset)")
    return value


Rfc3339 = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text)]
"""A contract's ``format: date-time``: the string form only (pydantic's own datetime also takes
epoch numbers, numeric strings and a space for the ``T``, which no such contract allows)."""


class WireModel(BaseModel):
    """Base of every model of an external payload: extra fields allowed, values frozen."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


def first_error(exc: ValidationError) -> str:
    """``<field path>: <what is wrong>`` of the first error, never the value (may be personal).
    A body that is not JSON says so in words that cannot be read as another "key": the
    parser's "key must be a string" sat next to a payment's original key and confused."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    if first["type"] == "json_invalid":
        detail = str(first["msg"]).removeprefix("Invalid JSON: ")
        detail = detail.replace("key must be a string", "an object key must be a quoted string")
        return f"{where}: not valid JSON: {detail}"
    return f"{where}: {first['msg']}"


def _may_hold(annotation: Any) -> bool:
    """Whether a field of this annotation can hold a wire model (directly or in a list); when
    unsure (``Any``, a type variable, a forward reference), yes."""
    if annotation is Any:  # a class itself since Python 3.11
        return True
    if is_typeddict(annotation):  # a dict: its extras are its caller's to name (``also``)
        return False
    if isinstance(annotation, type) and get_origin(annotation) is None:
        return issubclass(annotation, WireModel) or issubclass(WireModel, annotation)
    if get_origin(annotation) is Literal:
        return False
    args = get_args(annotation)
    return any(_may_hold(a) for a in args) if args else True


_SHAPES: dict[type, tuple[str, ...] | None] = {}


def _nesting(cls: type) -> tuple[str, ...] | None:
    """The declared fields of ``cls`` that may hold wire models: the only ones the walks visit
    (a day of a payment message has none: no look at its five values). None: not a wire model
    (one cached look per value, cheaper than ``isinstance`` through pydantic's ABC metaclass)."""
    try:
        return _SHAPES[cls]
    except KeyError:
        pass
    shape = None
    if issubclass(cls, WireModel):
        shape = tuple(n for n, f in cls.model_fields.items() if _may_hold(f.annotation))
    _SHAPES[cls] = shape
    return shape


def _nested(model: WireModel) -> list[tuple[str, WireModel]]:
    """(field name, wire model) for every wire model held by a declared field of ``model``."""
    found = []
    values = model.__dict__  # the declared fields only: the extras are ``__pydantic_extra__``
    for name in _nesting(type(model)) or ():
        value = values.get(name)
        for item in value if isinstance(value, list) else (value,):
            if isinstance(item, WireModel):
                found.append((name, item))
    return found


def unknown_fields(model: WireModel, prefix: str = "") -> list[str]:
    """Dotted names of every extra field in ``model`` and the wire models nested in it."""
    found = {f"{prefix}{key}" for key in (model.__pydantic_extra__ or {})}
    for name, item in _nested(model):
        found.update(unknown_fields(item, f"{prefix}{name}[]."))
    return sorted(found)


def has_unknown_fields(model: WireModel) -> bool:
    """Whether ``model`` or a wire model nested in it has an extra field: the walk of
    ``unknown_fields`` without naming anything, stopping at the first (most answers have none).
    Inlined for the usual shape, a list of leaves: a payment message's 20 days cost 20 looks."""
    if model.__pydantic_extra__:
        return True
    values: dict[str, Any] = model.__dict__
    for name in _nesting(type(model)) or ():
        value = values.get(name)
        items: list[Any] | tuple[Any] = value if isinstance(value, list) else (value,)
        for item in items:  # no call per item but the recursion: a Python call cost more
            kind = type(item)
            shape = _SHAPES[kind] if kind in _SHAPES else _nesting(kind)
            if shape is None:
                continue
            if item.__pydantic_extra__ or (shape and has_unknown_fields(item)):
                return True
    return False


def extra_keys(
    prefix: str, items: Sequence[Mapping[str, Any]], fields: AbstractSet[str]
) -> list[str]:
    """Names (``prefix[].key``, as the walk names a nested model's) of the keys of ``items``
    beyond ``fields``: a list field typed as a ``TypedDict`` whose keys are all required, for
    ``note_unknown_fields(also=...)``. Every item's size is read in one C loop first."""
    if not items or set(map(len, items)) == {len(fields)}:
        return []
    return [f"{prefix}[].{key}" for key in {key for item in items for key in item} - fields]


def note_unknown_fields(system: str, model: WireModel, *, also: Iterable[str] = ()) -> list[str]:
    """Count the extra fields of ``model``; log each name the first time; return them.
    ``also``: extra fields found outside its wire models (in a field typed as a ``TypedDict``),
    named by the caller as the walk names a nested model's."""
    also = list(also)
    if not also and not has_unknown_fields(model):
        return []
    fields = sorted({*unknown_fields(model), *also})
    for name in fields:
        label, news = _label(system, name[:MAX_NAME_CHARS])
        UNKNOWN_FIELDS.labels(system, label).inc()
        if news == "new":
            logger.warning(
                "%s sent unknown field %r; ignored",
                system,
                label,
                extra={"action": "unknown_field", "system": system, "field": label},
            )
        elif news == "capped":
            logger.warning(
                "%s sent over %d distinct unknown fields; further ones are counted as %r, "
                "not logged",
                system,
                MAX_FIELD_NAMES,
                OTHER,
                extra={"action": "unknown_fields_capped", "system": system},
            )
    return fields


def _label(system: str, name: str) -> tuple[str, Literal["new", "capped", ""]]:
    """The metric label for ``name``, and whether it is a new name or the first one past the
    cap (each logged once)."""
    with _seen_lock:
        names = _seen.setdefault(system, set())
        if name in names:
            return name, ""
        if len(names) < MAX_FIELD_NAMES:
            names.add(name)
            return name, "new"
        if system in _capped:
            return OTHER, ""
        _capped.add(system)
        return OTHER, "capped"
