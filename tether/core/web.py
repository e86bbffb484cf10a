"""Server-rendered pages: one shared layout (``templates/layout.html``) for every capability.

A capability keeps its page templates in ``tether/<capability>/templates`` and extends
``layout.html``; the layout shows the alerts a page passes (for example stale-data warnings),
so every page warns the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse


@cache
def templates(package: str) -> jinja2.Environment:
    """Templates of ``package``, falling back to core's (where the layout lives)."""
    loader = jinja2.ChoiceLoader(
        [
            jinja2.PackageLoader(package, "templates"),
            jinja2.PackageLoader("tether.core", "templates"),
        ]
    )
    env = jinja2.Environment(
        loader=loader, autoescape=True, undefined=jinja2.StrictUndefined, enable_async=False
    )
    env.filters.update(when=when, pairs=pairs, label=label)
    return env


def when(value: Any) -> Any:
    """A time (or its ISO text, as JSON-ready records hold it) as a person reads it: to the
    second, in UTC; anything else as it is."""
    moment = value
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(moment, datetime) and moment.tzinfo is not None:
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return value


def pairs(value: Any) -> Any:
    """A mapping as ``key: value`` pairs (a step's detail), not Python's dict text."""
    if isinstance(value, Mapping):
        return ", ".join(
            f"{label(k)}: ({pairs(v)})" if isinstance(v, Mapping) else f"{label(k)}: {v}"
            for k, v in value.items()
        )
    return value


def label(key: Any) -> str:
    """A field name as a heading: ``amount_ex_gst`` reads "amount ex gst"."""
    return str(key).replace("_", " ")


def render(
    package: str,
    name: str,
    *,
    alerts: list[str] | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """Render ``name`` of ``package`` inside the shared layout."""
    html = templates(package).get_template(name).render(alerts=alerts or [], **context)
    return HTMLResponse(html, status_code=status_code, headers=headers)


_TITLES = {
    400: "Request refused",
    401: "Sign-in needed",
    403: "Not allowed",
    404: "Not found",
    409: "Not possible right now",
    422: "Invalid request",
    502: "The source system failed",
    503: "The source system is unavailable",
}
_HINTS = {
    404: "Check the address; the object may not exist in tether yet.",
    503: "tether has no local copy to show yet. Try again in a minute; the operator console "
    "at / shows when the source is reachable again.",
    502: "Try again later; the operator console at / shows the state of each source.",
}


def wants_html(request: Request) -> bool:
    """A browser asking for a page (not an API client): its errors are shown as pages."""
    return "text/html" in request.headers.get("accept", "") and not request.url.path.startswith(
        "/api/"
    )


def error_page(
    status_code: int, detail: str, title: str | None = None, hint: str | None = None
) -> HTMLResponse:
    """An error as a page in the shared layout, with what to do next."""
    return render(
        "tether.core",
        "error.html",
        status_code=status_code,
        title=title or _TITLES.get(status_code, "Something went wrong"),
        detail=detail,
        hint=_HINTS.get(status_code, "") if hint is None else hint,
        code=status_code,
    )
