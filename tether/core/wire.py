"""Tolerant reading of external payloads, shared by every client.

The reference systems broke on any field their contract did not name. tether's wire models allow
extra fields; ``note_unknown_fields`` counts them per system in one metric and logs each name
once per process, so a contract extension is visible without being fatal.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, ValidationError

logger = logging.getLogger(__name__)

UNKNOWN_FIELDS = Counter(
    "tether_upstream_unknown_fields_total",
    "Fields in external payloads that the contract does not name (ignored)",
    ["system", "field"],
)
_seen: set[tuple[str, str]] = set()


class WireModel(BaseModel):
    """Base of every model of an external payload: extra fields allowed, values frozen."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


def first_error(exc: ValidationError) -> str:
    """``<field path>: <what is wrong>`` of the first error, never the value (may be personal)."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return f"{where}: {first['msg']}"


def unknown_fields(model: WireModel, prefix: str = "") -> list[str]:
    """Dotted names of every extra field in ``model`` and the wire models nested in it."""
    found = {f"{prefix}{key}" for key in (model.__pydantic_extra__ or {})}
    # the declared fields only (``__dict__``; the extras are above): pydantic's ``__iter__``
    # yielding both was most of a sync's parse cost
    for name, value in model.__dict__.items():
        for item in value if isinstance(value, list) else (value,):
            if isinstance(item, WireModel):
                found.update(unknown_fields(item, f"{prefix}{name}[]."))
    return sorted(found)


def has_unknown_fields(model: WireModel) -> bool:
    """Whether ``model`` or a wire model nested in it has an extra field: the walk of
    ``unknown_fields`` without naming anything, stopping at the first (most answers have none)."""
    if model.__pydantic_extra__:
        return True
    for value in model.__dict__.values():
        if isinstance(value, list):
            if any(isinstance(item, WireModel) and has_unknown_fields(item) for item in value):
                return True
        elif isinstance(value, WireModel) and has_unknown_fields(value):
            return True
    return False


def note_unknown_fields(system: str, model: WireModel) -> list[str]:
    """Count the extra fields of ``model``; log each name the first time; return them."""
    if not has_unknown_fields(model):
        return []
    fields = unknown_fields(model)
    for name in fields:
        UNKNOWN_FIELDS.labels(system, name).inc()
        if (system, name) not in _seen:
            _seen.add((system, name))
            logger.warning(
                "%s sent unknown field %r; ignored",
                system,
                name,
                extra={"action": "unknown_field", "system": system, "field": name},
            )
    return fields
