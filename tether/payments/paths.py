"""Where a key's status and a case's page are. Keys and sakIds are the sender's and may hold
``/``, ``?``, ``#``, ``%`` or spaces: each is quoted whole, as one path segment. One place for
the API's answers, the console's links and the compact statuses (no web stack imported)."""

from __future__ import annotations

from urllib.parse import quote


def segment(value: str) -> str:
    """``value`` as one path segment: a key's ``/``, ``?``, ``#``, ``%`` and spaces quoted."""
    return quote(value, safe="")


def status_url(key: str) -> str:
    return f"/api/v1/payments/status/{segment(key)}"


def case_page_url(sak_id: str) -> str:
    return f"/payments/cases/{segment(sak_id)}"
