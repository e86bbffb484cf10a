"""Types of setting values checked when the settings are read, and their errors in one line.

A value that cannot work must stop a command before it does anything, saying which variable to
fix: a time zone or a URL kept as a plain string failed only when first used (a page of
``ZoneInfoNotFoundError``; a URL without ``http://`` counted as an outage and opened the
upstream's shared circuit for every process). The types stay ``str``, so code reading a setting
is unchanged; only what they accept narrows.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BeforeValidator, SecretStr, ValidationError

from tether.core.logging import redact

if TYPE_CHECKING:
    from pydantic.fields import FieldInfo
    from pydantic_core import ErrorDetails
    from pydantic_settings import BaseSettings

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(value: str) -> str:
    name = value.strip().upper()
    if name not in LOG_LEVELS:
        raise ValueError(f"not a log level: give {', '.join(LOG_LEVELS[:-1])} or {LOG_LEVELS[-1]}")
    return name


def _time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder, e.g. "Europe"
        raise ValueError("not a time zone: give an IANA name such as Europe/Oslo or UTC") from None
    return value


def _cron(value: str) -> str:
    """A schedule as the workflow library (DBOS) reads it when a worker registers it: croniter,
    with a sixth field for seconds first. Checked there only, a bad one (``99 * * * *``) let the
    worker start and crash-loop its job on "Invalid cron schedule". Blank: no schedule."""
    from croniter import croniter  # only what reads a schedule pays for importing it

    if not value.strip():
        return ""
    if not croniter.is_valid(value, second_at_beginning=True):
        raise ValueError(
            "not a cron schedule: give minute hour day-of-month month day-of-week, e.g. "
            "'30 3 * * *' (a sixth field first: seconds); empty: none"
        )
    return value


def _url(schemes: tuple[str, ...], example: str) -> AfterValidator:
    """A URL of one of ``schemes`` with a host (and a port that is a number, if any)."""

    def check(value: str | None) -> str | None:
        if value is None:  # an optional one, unset
            return None
        parts = urlsplit(value)
        try:
            parts.port  # noqa: B018 (a property that raises on a port that is no number)
        except ValueError:
            raise ValueError(f"its port is not a number (e.g. {example})") from None
        if parts.scheme.lower() not in schemes or not parts.hostname or re.search(r"\s", value):
            wanted = " or ".join(", ".join(f"{s}://" for s in schemes).rsplit(", ", 1))
            raise ValueError(f"not a URL with a host starting {wanted} (e.g. {example})")
        return value

    return AfterValidator(check)


def _blank_is_unset(value: Any) -> Any:
    """An empty variable (``TETHER_X=``) means unset, as it did before the value was checked."""
    return None if isinstance(value, str) and not value.strip() else value


LogLevel = Annotated[str, AfterValidator(_log_level)]
"""A ``logging`` level name, any case (stored upper case)."""
TimeZoneName = Annotated[str, AfterValidator(_time_zone)]
"""An IANA time zone ``zoneinfo`` knows (every ``*_TIMEZONE`` setting)."""
CronSchedule = Annotated[str, AfterValidator(_cron)]
"""A cron expression DBOS's scheduler takes (every ``*_SCHEDULE`` setting, UTC); blank: none."""
UpstreamUrl = Annotated[str, _url(("http", "https"), "https://host.example:8443")]
"""The base URL of an external system tether calls over HTTP."""
OptionalUpstreamUrl = Annotated[
    str | None, BeforeValidator(_blank_is_unset), _url(("http", "https"), "https://host.example")
]
NatsUrl = Annotated[
    str | None,
    BeforeValidator(_blank_is_unset),
    _url(("nats", "tls", "ws", "wss"), "nats://127.0.0.1:4222"),
]
"""A NATS server as nats-py takes it; unset (or empty): no broker."""


def variable(cls: type[BaseSettings], field: str) -> str:
    """The environment variable a field of ``cls`` is read from."""
    info = cls.model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    if isinstance(alias, str):
        return alias
    return f"{cls.model_config.get('env_prefix', '')}{field}".upper()


def _field(cls: type[BaseSettings], name: str) -> tuple[str, FieldInfo | None]:
    """The field a validation error's location names (a field or its alias)."""
    for field, info in cls.model_fields.items():
        if name in (field, info.validation_alias):
            return field, info
    return name, None


def _example(info: FieldInfo | None) -> str:
    default = info.default if info is not None else None
    if default is None or isinstance(default, SecretStr) or default == "":
        return ""
    return f" (e.g. {json.dumps(default) if isinstance(default, list) else default})"


def _reason(error: ErrorDetails, info: FieldInfo | None) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind in ("int_parsing", "int_from_float", "int_type"):
        return f"not a whole number{_example(info)}"
    if kind in ("float_parsing", "float_type"):
        return f"not a number{_example(info)}"
    if kind == "finite_number":
        return f"not a finite number{_example(info)}"
    if kind in ("bool_parsing", "bool_type"):
        return "not a boolean: give true or false (or 1/0, yes/no, on/off)"
    if kind in ("literal_error", "enum"):
        return f"not an allowed value: give {ctx.get('expected')}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    bounds = {
        "greater_than_equal": ("ge", "at least"),
        "greater_than": ("gt", "more than"),
        "less_than_equal": ("le", "at most"),
        "less_than": ("lt", "less than"),
    }
    if kind in bounds:
        key, words = bounds[kind]
        bound = ctx.get(key)
        return f"out of range: give {words} {f'{bound:g}' if isinstance(bound, float) else bound}"
    message = error["msg"]
    return message[0].lower() + message[1:]


def _shown(value: object, info: FieldInfo | None) -> str:
    """The value as given (credentials in it masked); a secret's not at all."""
    if info is not None and SecretStr in (
        info.annotation,
        *getattr(info.annotation, "__args__", ()),
    ):
        return " (hidden)"
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return f"={redact(text)!r}"  # a URL's password too


def explain(cls: type[BaseSettings], exc: ValidationError) -> str:
    """Every bad value of ``exc`` in one line: ``TETHER_PORT='abc': not a whole number (e.g.
    8000)``, naming the variable an operator sets rather than the field."""
    parts = []
    for error in exc.errors():
        field, info = _field(cls, str(error["loc"][0]) if error["loc"] else "")
        item = "".join(f"[{i}]" for i in error["loc"][1:])
        name = variable(cls, field) + item
        parts.append(f"{name}{_shown(error.get('input'), info)}: {_reason(error, info)}")
    return "; ".join(parts)


def explain_unparsed(cls: type[BaseSettings], field: str, value: str | None) -> str:
    """pydantic-settings' error for a value that must be JSON (a list) and is not."""
    field, info = _field(cls, field)
    shown = _shown(value, info) if value is not None else ""
    return f"{variable(cls, field)}{shown}: not JSON{_example(info)}"
