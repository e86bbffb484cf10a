"""Structured logs: one line per event, JSON when asked, personal ids and secrets masked."""

from __future__ import annotations

import copy
import json
import logging
import re
import sys
from typing import Any
from urllib.parse import quote, unquote_plus

# Norwegian person ids (11 digits) are personal data: never in a log line. GSRNs (18 digits),
# GLNs (13) and organisation numbers (9) do not match.
_PERSON_ID = re.compile(r"(?<!\d)\d{11}(?!\d)")
# a credential after its scheme: ``Bearer x``, ``bearer:x``, ``Bearer "x"``, ``Bearer%20x`` (as a
# query value), ``Basic <base64>``
_SCHEME = re.compile(r"(?i)\b(bearer|basic)(?:\s|%20|\+|[:=])+[\"']?[^\s\"'&,;]+")
# a credential after its name, wherever: ``token=x``, ``"password": "x"``, ``tether_session=x``,
# ``Authorization: Token x`` (prefixes as in ``access_token`` need no match: the name's end does)
_NAMED_SECRET = re.compile(
    r"(?i)((?:token|secret|passw(?:or)?d|pwd|api[_-]?key|access[_-]?key|credentials?|session|jwt"
    r"|auth(?:orization)?)(?:\[\])?[\"']?\s*(?:[:=]|%3d)\s*[\"']?(?:(?:token|bearer|basic)\s+)?)"
    r"[^\s\"'&,;]+"
)
# a credential in a query string (``?key=``, an OAuth ``code`` on /docs' redirect...): the value
# goes, the rest stays. uvicorn's access line hides every query value anyway (``mask_query``).
_QUERY_SECRET = re.compile(r"(?i)([?&;][\w.%-]*(?:key|code|sig(?:nature)?)(?:\[\])?=)[^&;#\s\"']+")
# keys.PREFIX: an API key anywhere, in any case, percent-encoded too (``tth%5F...%2D...``)
_API_KEY = re.compile(r"(?i)tth(?:_|%5f)[0-9a-f]{16}(?:_|%5f)(?:[\w-]|%[0-9a-f]{2})+")
# the record's own fields, and uvicorn's copy of its message with terminal colour codes in it
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "color_message",
}


def redact(text: str) -> str:
    """Mask person ids, API keys and credentials (after a scheme, a name or in a query string) in
    ``text``."""
    text = _SCHEME.sub(lambda m: m[1] + " <HIDDEN>", _API_KEY.sub("tth_<HIDDEN>", text))
    text = _QUERY_SECRET.sub(r"\1<HIDDEN>", _NAMED_SECRET.sub(r"\1<HIDDEN>", text))
    return _PERSON_ID.sub("<HIDDEN>", text)


def mask_query(target: str) -> str:
    """``path?query`` with every query value hidden and each name percent-decoded (then encoded
    again where it is not printable ASCII), so an operator still sees which parameters came.

    Matching names of credentials missed too many ways of writing them (``tok%65n``,
    ``authorization=Bearer%20...``, ``access_key``...); a part without ``=`` could be a value, so
    it is hidden whole.
    """
    path, mark, query = target.partition("?")
    if not mark:
        return target
    shown = []
    for part in re.split(r"[&;]", query):
        name, equals, _ = part.partition("=")
        name, inner, _ = unquote_plus(name).partition("=")  # an encoded ``=`` ends the name too
        if equals or inner:
            shown.append(quote(name[:100], safe="[]/") + "=<HIDDEN>")
        elif part:
            shown.append("<HIDDEN>")
    return path + "?" + "&".join(shown)


class _RedactingFormatter(logging.Formatter):
    def __init__(self, as_json: bool) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")
        self.as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            # (client, method, path with query, HTTP version, status): the query's values go
            record = copy.copy(record)
            record.args = (*args[:2], mask_query(str(args[2])), *args[3:])
        extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        if self.as_json:
            payload: dict[str, Any] = {
                "ts": self.formatTime(record),
                "level": record.levelname,
                "logger": record.name,
                "message": record.getMessage(),
                **extras,
            }
            if record.exc_info:
                payload["exc"] = self.formatException(record.exc_info)
            return redact(json.dumps(payload, default=str))
        line = super().format(record)
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return redact(line)


def configure_logging(level: str = "INFO", as_json: bool = False) -> None:
    """Route every logger, uvicorn's included, to stderr through the redacting formatter.

    uvicorn must then run with ``log_config=None`` (see ``limits.server_options``) so it does
    not install its own handlers again.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_RedactingFormatter(as_json))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "psycopg.pool", "pgserver"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for server in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        # uvicorn's own lines (errors and the access log) go through the same formatter
        logging.getLogger(server).handlers[:] = []
        logging.getLogger(server).propagate = True
