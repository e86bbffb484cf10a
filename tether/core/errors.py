"""The exception tree of tether. Every error tether raises on purpose is a ``TetherError``.

TetherError
 ├── ConfigurationError            settings that cannot work
 │    └── InvalidSetting           a TETHER_* value that cannot be read (the CLI exits 2)
 ├── NotFound                      a row or remote object that does not exist
 ├── Conflict                      a state that forbids the operation (e.g. data is stale)
 │    ├── DataRejected             the database refused data by one of our rules
 │    └── Busy                     a row stayed locked longer than the lock timeout
 ├── Unauthorized                  no valid credential (401)
 │    └── LoginRequired            the same, on an HTML page (answered with a login link)
 ├── Forbidden                     the caller may not see or change this
 ├── DatabaseUnavailable           PostgreSQL cannot be reached in time (503)
 ├── InvalidInput                  a caller sent something malformed
 └── UpstreamError                 an external system failed us
      ├── UpstreamNotFound         it says the object does not exist (404)
      ├── UpstreamRejected         it refused our request (4xx other than 404)
      ├── UpstreamUnavailable      down, timed out, 5xx, or circuit open
      └── UpstreamInvalidPayload   it answered with data that breaks the contract

A bug in tether itself is never a ``TetherError``: it surfaces as a 500, not as "upstream down".
"""

from __future__ import annotations

from typing import ClassVar


class TetherError(Exception):
    """Something tether expected could go wrong."""

    status_code: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1  # of a ``tether`` command it ends

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or self.__class__.__name__).strip())

    @property
    def message(self) -> str:
        return str(self.args[0])


class ConfigurationError(TetherError):
    """The configuration cannot work; fix the TETHER_* variables."""


class InvalidSetting(ConfigurationError):
    """A TETHER_* variable's value cannot be read; the message names it and what it takes."""

    exit_code = 2  # as a bad command-line value: the invocation was wrong, nothing was done


class NotFound(TetherError):
    """No such object."""

    status_code = 404


class Conflict(TetherError):
    """The object is in a state that forbids this operation."""

    status_code = 409


class DataRejected(Conflict):
    """The database refused the data by one of tether's rules."""

    def __init__(self, message: str | None = None, *, reason: str = "data_rejected") -> None:
        super().__init__(message)
        self.reason = reason


class Busy(Conflict):
    """Another transaction held the row longer than the lock timeout; try again."""

    reason = "busy"


class Unauthorized(TetherError):
    """A valid bearer credential is required."""

    status_code = 401


class LoginRequired(Unauthorized):
    """Sign in (or send a bearer credential) to see this page."""


class DatabaseUnavailable(TetherError):
    """The database cannot be reached right now; try again shortly."""

    status_code = 503
    reason: ClassVar[str] = "database_unavailable"


class Forbidden(TetherError):
    """The caller may not see or change this object."""

    status_code = 403


class InvalidInput(TetherError):
    """The request is malformed."""

    status_code = 422


class UpstreamError(TetherError):
    """An external system failed us."""

    status_code = 502
    reason: ClassVar[str] = "upstream_error"

    def __init__(self, message: str | None = None, *, answer: str = "") -> None:
        super().__init__(message)
        self.answer = answer  # what the system said (redacted, cut short): a client may read it


class UpstreamNotFound(UpstreamError):
    """The external system does not know this object."""

    status_code = 404
    reason = "upstream_not_found"


class UpstreamRejected(UpstreamError):
    """The external system refused the request."""

    reason = "upstream_rejected"

    def __init__(
        self, message: str | None = None, *, answer: str = "", http_status: int | None = None
    ) -> None:
        super().__init__(message, answer=answer)
        self.http_status = http_status  # 401/403: our credential was refused, not the request


class UpstreamUnavailable(UpstreamError):
    """The external system is down, slow or failing."""

    status_code = 503
    reason = "upstream_unavailable"

    def __init__(
        self, message: str | None = None, *, answer: str = "", timed_out: bool = False
    ) -> None:
        super().__init__(message, answer=answer)
        self.timed_out = timed_out  # slow, not down: asking again at once would not help


class UpstreamInvalidPayload(UpstreamError):
    """The external system answered with data that breaks its contract."""

    reason = "upstream_invalid_payload"


def one_line(exc: BaseException) -> str:
    """An error in one line: its type and the first line of its message (a log's kind, a
    console cell, a streak's key)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
