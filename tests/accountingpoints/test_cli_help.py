"""What the accounting point commands say about their input: formats a user can act on."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tether.accountingpoints import parties
from tether.cli import app
from tether.core.errors import InvalidInput


def _help(*command: str) -> str:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_load_help_says_the_header_is_optional_without_rst_markup() -> None:
    text = _help("accounting-points", "suppliers", "load")
    assert "``" not in text
    assert "a header) is optional" in text and "UTF-8" in text


def test_release_help_gives_the_id_format_and_where_to_find_it() -> None:
    text = _help("accounting-points", "release")
    assert "host:pid" in text and "tether status" in text
    assert "1 none held by that id" in text


def test_simulate_datahub_help_describes_gsrns_without_internal_names() -> None:
    text = _help("simulate", "datahub")
    assert "make_gsrn" not in text and "707057500000000018" in text


def test_a_single_party_is_refused_without_a_row_number() -> None:
    with pytest.raises(InvalidInput) as one:
        parties.check(parties.PartyKind.ENERGY_SUPPLIERS, [("123", "Foo")])
    assert one.value.message == "'123' is not a GLN (13 digits)"
    with pytest.raises(InvalidInput, match=r"^row 2: '123' is not a GLN"):
        parties.check(parties.PartyKind.ENERGY_SUPPLIERS, [("7080000000001", "A"), ("123", "B")])
