"""Structured logs: one line per event, JSON when asked, personal ids and secrets masked."""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any

# Norwegian person ids (11 digits) are personal data: never in a log line. GSRNs (18 digits),
# GLNs (13) and organisation numbers (9) do not match.
_PERSON_ID = re.compile(r"(?<!\d)\d{11}(?!\d)")
_BEARER = re.compile(r"(?i)bearer\s+[^\s\"']+")
# a credential in a query string (``?token=``, ``access_token``, an OAuth ``code`` on /docs'
# redirect...), as uvicorn's access line and any logged URL carry it: the value goes, the rest stays
_QUERY_SECRET = re.compile(
    r"(?i)([?&](?:[\w.-]*token|[\w.-]*secret|api[_-]?key|key|password|code|session)=)"
    r"[^&#\s\"']+"
)
_API_KEY = re.compile(r"tth_[0-9a-f]{16}_[A-Za-z0-9_-]{43}")  # keys.PREFIX: an API key anywhere
# the record's own fields, and uvicorn's copy of its message with terminal colour codes in it
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "color_message",
}


def redact(text: str) -> str:
    """Mask person ids, bearer tokens, API keys and credentials in query strings in ``text``."""
    text = _QUERY_SECRET.sub(r"\1<HIDDEN>", _API_KEY.sub("tth_<HIDDEN>", text))
    return _BEARER.sub("Bearer <HIDDEN>", _PERSON_ID.sub("<HIDDEN>", text))


class _RedactingFormatter(logging.Formatter):
    def __init__(self, as_json: bool) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")
        self.as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
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
