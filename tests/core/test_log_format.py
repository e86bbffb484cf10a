"""tether's log lines: one per record, its extras as fields, masked; uvicorn's coloured copy of
its message (``color_message``, terminal escape codes) is not one of them."""

from __future__ import annotations

import json
import logging

from tether.core.logging import _RedactingFormatter


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord(
        "uvicorn.error", logging.INFO, "", 0, "Started process [%d]", (7,), None
    )
    record.__dict__.update(extra)
    return record


def test_uvicorns_coloured_message_is_left_out_in_text_and_json() -> None:
    coloured = _record(color_message="Started process [\x1b[36m%d\x1b[0m]", action="started")
    text = _RedactingFormatter(as_json=False).format(coloured)
    assert "\x1b" not in text and "color_message" not in text and "action=started" in text
    payload = json.loads(_RedactingFormatter(as_json=True).format(coloured))
    assert "color_message" not in payload and payload["action"] == "started"
    assert payload["message"] == "Started process [7]"
