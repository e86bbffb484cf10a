"""Structured logs: one line per event, JSON when asked, personal ids and secrets masked, and
a warning repeated in a loop (an outage) logged once a minute, not on every attempt."""

from __future__ import annotations

import copy
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote_plus

from tether.core.errors import one_line

REPEAT_WINDOW_S = 60.0  # a warning or error seen again within this is counted, not logged
TRACEBACK_AGAIN_AFTER_S = 600.0  # a repeat logged in a later window has no traceback until then
# libraries whose retry loops log many messages for one outage (DBOS' queue threads, schedules,
# locks; the pool's reconnects): their repeats are kinds by level and exception type only
COARSE_LOGGERS = frozenset({"dbos", "psycopg"})
_DIGITS = re.compile(r"\d+")  # ports, pids, counts and durations in an error's message

# Norwegian person ids (11 digits) are personal data: never in a log line. GSRNs (18 digits),
# GLNs (13) and organisation numbers (9) do not match.
_PERSON_ID = re.compile(r"(?<!\d)\d{11}(?!\d)")
# A value, quoted or not. A quoted one ("x y", 'x', or escaped as in JSON text: \"x\") goes up
# to its closing quote (or the line's end), an unquoted one up to a space, quote, ``&``, ``,``
# or ``;``. Each repeat takes a character only one way and stops where the next part starts: the
# patterns below run in linear time, whatever the text.
_OPEN = r"(?:(?P<dq>\\?\")|(?P<sq>\\?'))?"
_VALUE = r"(?(dq)(?:[^\"\\\n]|\\[^\"\n])*|(?(sq)(?:[^'\\\n]|\\[^'\n])*|[^\s\"'&,;]+))"
# a credential after its scheme: ``Bearer x``, ``bearer:x``, ``Bearer "x"``, ``Bearer+x``,
# ``a%20Bearer%09x`` (percent-encoded, once or twice), ``Basic <base64>``
_SEP = r"(?:\s|%(?:25)?(?:20|09|0a|0d|3a|3d)|\+|[:=])+"
_SCHEME = re.compile(rf"(?i)(?<![a-z])(?P<keep>bearer|basic){_SEP}{_OPEN}(?P<value>{_VALUE})")
# prose naming the credential, not one: "missing or wrong bearer token" (an upstream's 401) read
# "bearer <HIDDEN>". Only the word, and only where nothing follows it but a quote, a separator or
# the end: "Bearer token abc" stays masked, as the word may be the start of a credential there.
_PLACEHOLDER = re.compile(r"(?i)(?:tokens?|credentials?)[.!?)]*\\?")  # \" in JSON text
_PROSE_END = re.compile(r"[\\\"'&,;]|$")
# a credential after its name, wherever: ``token=x``, ``"password": "x y"``, ``tether_session=x``,
# ``password%3Ax``, ``Authorization: Token x`` (prefixes as in ``access_token`` need no match: the
# name's end does)
_NAME = (
    r"(?:token|secret|passw(?:or)?d|pwd|api[_-]?key|access[_-]?key|credentials?|session|jwt"
    r"|auth(?:orization)?)(?:\[\])?"
)
_NAMED_SECRET = re.compile(
    rf"(?i)(?P<keep>{_NAME}(?:\\?[\"']|%(?:25)?22)?\s*(?:[:=]|%(?:25)?3[ad])\s*{_OPEN}"
    rf"(?:(?:token|bearer|basic)\s+)?){_VALUE}"
)
_SECRET_KEY = re.compile(rf"(?i){_NAME}$")  # an extra so named (``db_password``): all of it goes
# a credential in a query string (``?key=``, an OAuth ``code`` on /docs' redirect...): the value
# goes, the rest stays. uvicorn's access line hides every query value anyway (``mask_query``).
_QUERY_SECRET = re.compile(r"(?i)([?&;][\w.%-]*(?:key|code|sig(?:nature)?)(?:\[\])?=)[^&;#\s\"']+")
# a password in a URL's userinfo (``scheme://user:password@host``), up to the word's last ``@``
# (a password may hold one), and in a connection string (``password=x``, ``?password='x y'``);
# possessive repeats: linear time
_URL_PASSWORD = re.compile(r"(://[^\s:@/\"'<>]*+:)((?:[^\s\"'@]*+@)++)")
_CONNINFO_PASSWORD = re.compile(r"(?i)(\bpassword\s*=\s*)(?:'(?:[^'\\\n]|\\.)*+'?|[^\s&'\"]++)")
_EXAMPLE_PASSWORD = "password@"  # the userinfo password of examples in messages: no secret
# keys.PREFIX: an API key anywhere, in any case, percent-encoded too (``tth%5F...%2D...``)
_API_KEY = re.compile(r"(?i)tth(?:_|%(?:25)?5f)[0-9a-f]{16}(?:_|%(?:25)?5f)(?:[\w-]|%[0-9a-f]{2})+")
# the record's own fields, and uvicorn's copy of its message with terminal colour codes in it
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "color_message",
}


def hide_passwords(text: str, mask: str = "***") -> str:
    """``text`` with the password of every URL (``postgresql://user:password@host``) and
    connection string (``password=x``) in it as ``mask``: what an error quoting a
    ``DATABASE_URL`` (libpq's own "invalid URI" quotes it whole) or an upstream URL may show.
    The placeholder of an example (``user:password@host``) stays, to read as one."""
    text = _URL_PASSWORD.sub(
        lambda m: m[0] if m[2] == _EXAMPLE_PASSWORD else f"{m[1]}{mask}@", text
    )
    return _CONNINFO_PASSWORD.sub(rf"\g<1>{mask}", text)


def redact(text: str) -> str:
    """Mask person ids, API keys, URL passwords and credentials (after a scheme, a name or in a
    query string) in ``text``."""
    text = _URL_PASSWORD.sub(r"\1<HIDDEN>@", text)
    text = _SCHEME.sub(_scheme_hidden, _API_KEY.sub("tth_<HIDDEN>", text))
    text = _QUERY_SECRET.sub(r"\1<HIDDEN>", _NAMED_SECRET.sub(r"\g<keep><HIDDEN>", text))
    return _PERSON_ID.sub("<HIDDEN>", text)


def _scheme_hidden(match: re.Match[str]) -> str:
    if _PLACEHOLDER.fullmatch(match["value"]) and _PROSE_END.match(match.string, match.end()):
        return match[0]
    return f"{match['keep']} {match['dq'] or match['sq'] or ''}<HIDDEN>"


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
    def __init__(self, as_json: bool, fields: dict[str, str] | None = None) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")
        self.as_json = as_json
        self.fields = fields or {}  # on every line (a worker child's lane and pid)

    def format(self, record: logging.LogRecord) -> str:
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            # (client, method, path with query, HTTP version, status): the query's values go
            record = copy.copy(record)
            record.args = (*args[:2], mask_query(str(args[2])), *args[3:])
        extras = {
            k: "<HIDDEN>" if _SECRET_KEY.search(k) else v
            for k, v in record.__dict__.items()
            if k not in _STANDARD
        } | self.fields
        if self.as_json:
            # each text masked before it is quoted: masking the JSON line took the ``\`` of an
            # escaped quote for the value, left the secret and broke the line's JSON
            payload: dict[str, Any] = {
                "ts": self.formatTime(record),
                "level": record.levelname,
                "logger": record.name,
                "message": redact(record.getMessage()),
                **{k: _masked(v) for k, v in extras.items()},
            }
            if record.exc_info:
                payload["exc"] = redact(self.formatException(record.exc_info))
            return json.dumps(payload)
        line = super().format(record)
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return redact(line)


def _masked(value: object) -> object:
    """``value`` as JSON can hold it, each text in it masked (the values of keys named as
    credentials whole)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, dict):
        return {
            redact(str(k)): "<HIDDEN>" if _SECRET_KEY.search(str(k)) else _masked(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    text = str(value)
    shown = redact(text)
    return value if isinstance(value, int | float) and shown == text else shown  # a person id?


class _Repeats(logging.Filter):
    """Lets the first warning or error of a kind through, counts its repeats for
    ``REPEAT_WINDOW_S``, and then says how many there were: a database outage made every
    library retry loop (DBOS' queue threads, its launch, psycopg's pool, our jobs' retries) log
    a line, often a traceback, per attempt (1,437 lines from one worker in 80 s).

    A kind: the logger, the message template with its text arguments (a job's or a queue's
    name; numbers such as durations differ between repeats) and the exception (its type and
    first line: another error is another kind, with its own traceback); for the libraries of
    ``COARSE_LOGGERS``, when a record carries an exception, only the logger, the level and the
    exception (from ``exc_info`` or the arguments, its digits masked), whatever the message:
    DBOS logs dozens of different messages for one error in an outage's first second. Records
    below WARNING (the access log, progress lines) pass untouched, at the cost of one compare.
    The first of a kind is never held back. A window that ends with repeats held back says so
    in one line ("N similar records suppressed ..., the last: <its message>", on the next
    record of any kind) and opens the next window: an outage logs a kind once a minute. A
    repeat after a quiet window is let through, without a second traceback (``error=`` names
    it) until the kind has been quiet for ``TRACEBACK_AGAIN_AFTER_S``.
    """

    def __init__(
        self, handler: logging.Handler, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.handler = handler
        self.clock = clock
        self.lock = threading.Lock()
        # kind -> [end of its window, repeats held back in it, last seen, (logger, level, template),
        # the last held back's message] (not the record: its traceback would keep every frame's
        # locals alive)
        self.kinds: dict[tuple[Any, ...], list[Any]] = {}
        self.next_sweep = 0.0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        error = record.exc_info[1] if record.exc_info else None
        args = record.args if isinstance(record.args, tuple) else ()
        said = _said(error)
        kind: tuple[Any, ...]
        raised = error or next((a for a in args if isinstance(a, BaseException)), None)
        if raised is not None and record.name.split(".")[0] in COARSE_LOGGERS:
            # a library's burst of many messages over one outage: one kind per exception type
            # (a message with no exception keeps its own kind: it is no burst of one error)
            kind = (record.name, record.levelno, _DIGITS.sub("N", _said(raised)))
        else:
            kind = (record.name, str(record.msg), said, *(a for a in args if isinstance(a, str)))
        now = self.clock()
        with self.lock:
            ended = self._sweep(now) if now >= self.next_sweep else []
            entry = self.kinds.get(kind)
            if entry is None:
                first = (record.name, record.levelno, record.levelname, str(record.msg))
                self.kinds[kind] = [now + REPEAT_WINDOW_S, 0, now, first, ""]
            else:
                entry[2] = now
                held = now < entry[0]
                if held:
                    entry[1] += 1
                    entry[4] = _message(record)  # the summary shows the last one held back
                else:  # a quiet window ended: this one opens the next
                    entry[0] = now + REPEAT_WINDOW_S
        for line in ended:
            self._emit(line)
        if entry is None:
            return True  # the first of its kind: as it is
        if not held:
            again = logging.makeLogRecord(record.__dict__)  # other handlers keep the original
            if error is not None:  # its traceback was logged the first time
                again.error = said
                again.exc_info, again.exc_text = None, None
            self._emit(again)
        return False

    def _sweep(self, now: float) -> list[logging.LogRecord]:
        """Windows that ended with repeats held back: a line each saying how many. A kind quiet
        for ``TRACEBACK_AGAIN_AFTER_S`` is forgotten: its next one is a first again."""
        self.next_sweep = now + min(1.0, REPEAT_WINDOW_S)
        lines = []
        for kind, entry in list(self.kinds.items()):
            if now >= entry[2] + TRACEBACK_AGAIN_AFTER_S:
                del self.kinds[kind]
            elif now >= entry[0] and entry[1]:
                name, levelno, levelname, _ = entry[3]
                summary = {
                    "name": name,
                    "levelno": levelno,
                    "levelname": levelname,
                    "msg": "%d similar records suppressed in the last %.0f s, the last: %s",
                    "args": (entry[1], REPEAT_WINDOW_S, entry[4]),
                    "action": "log_suppressed",
                }
                lines.append(logging.makeLogRecord(summary))
                entry[0], entry[1] = now + REPEAT_WINDOW_S, 0  # repeats held back again
        return lines

    def _emit(self, record: logging.LogRecord) -> None:
        self.handler.acquire()
        try:
            self.handler.emit(record)
        finally:
            self.handler.release()


def _said(error: BaseException | None) -> str:
    """An exception in one line ("" for none), at most 200 characters."""
    return one_line(error)[:200] if error else ""


def _message(record: logging.LogRecord) -> str:
    """The record's text (masked with the summary's line), or its template should its
    arguments not fit."""
    try:
        return record.getMessage()[:500]
    except (TypeError, ValueError):
        return str(record.msg)[:500]


def configure_logging(
    level: str = "INFO", as_json: bool = False, fields: dict[str, str] | None = None
) -> None:
    """Route every logger, uvicorn's included, to stderr through the redacting formatter;
    ``fields`` are added to every line (``worker=prompt:4711``: which process wrote it).

    uvicorn must then run with ``log_config=None`` (see ``limits.server_options``) so it does
    not install its own handlers again.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_RedactingFormatter(as_json, fields))
    handler.addFilter(_Repeats(handler))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "psycopg.pool", "pgserver"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for server in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        # uvicorn's own lines (errors and the access log) go through the same formatter
        logging.getLogger(server).handlers[:] = []
        logging.getLogger(server).propagate = True
