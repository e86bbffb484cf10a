"""Server-rendered pages: one shared layout (``templates/layout.html``) for every capability.

A capability keeps its page templates in ``tether/<capability>/templates`` and extends
``layout.html``; the layout shows the alerts a page passes (for example stale-data warnings),
so every page warns the same way.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2
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
    return jinja2.Environment(
        loader=loader, autoescape=True, undefined=jinja2.StrictUndefined, enable_async=False
    )


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
