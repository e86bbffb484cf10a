from __future__ import annotations

import pytest

from tether.core.sql import parse_queries


def test_parse_queries_splits_named_blocks_and_drops_comments() -> None:
    text = "-- name: one\n-- says one\nSELECT 1\n\n-- name: two\nSELECT %(x)s\n"
    assert parse_queries(text) == {"one": "SELECT 1", "two": "SELECT %(x)s"}


def test_parse_queries_rejects_duplicates_and_empty_blocks() -> None:
    with pytest.raises(ValueError, match="twice"):
        parse_queries("-- name: a\nSELECT 1\n-- name: a\nSELECT 2\n")
    with pytest.raises(ValueError, match="no SQL"):
        parse_queries("-- name: a\n-- only a comment\n")
