"""The env file ``securekey run --no-restart`` writes: format, permissions, atomicity."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from securekey.client import read_env_file, write_env_file
from securekey.client._envfile import format_env, parse_env
from securekey.exceptions import ValidationError


def test_values_round_trip_including_awkward_ones(tmp_path: Path) -> None:
    """Whatever the values, reading the file gives back exactly what was written."""
    values = {
        "SECURE_KEY": "A" * 64 + "," + "B" * 64,
        "URL": "postgres://u:p@h:5432/db?x=1",
        "QUOTES": 'say "hi" and \\ $HOME `x`',
        "LINES": "one\ntwo",
        "SPACE": " padded ",
        "EMPTY": "",
    }
    path = tmp_path / "app.env"
    write_env_file(path, values)
    assert read_env_file(path) == values


def test_the_file_is_private_and_replaced_atomically(tmp_path: Path) -> None:
    """The file has mode 0600 and no temporary file is left beside it."""
    path = tmp_path / "app.env"
    path.write_text("OLD=1\n")
    path.chmod(0o644)
    write_env_file(path, {"NEW": "2"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_env_file(path) == {"NEW": "2"}
    assert sorted(os.listdir(tmp_path)) == ["app.env"]


def test_plain_values_are_written_bare_and_sorted() -> None:
    """Simple values need no quotes, and lines are sorted by name."""
    assert format_env({"B": "2", "A": "x,y"}) == "A=x,y\nB=2\n"


def test_the_reader_accepts_comments_blank_lines_and_export() -> None:
    """Comments, blank lines and a leading export are tolerated."""
    assert parse_env('# c\n\nexport A=1\nB="q"\n') == {"A": "1", "B": "q"}


@pytest.mark.parametrize("text", ["NOT A LINE\n", 'A="unterminated\n', "1A=x\n"])
def test_the_reader_refuses_what_it_cannot_parse(text: str) -> None:
    """Lines that are not NAME=value are refused with their line number."""
    with pytest.raises(ValidationError, match="Line 1"):
        parse_env(text)


def test_names_that_are_not_variables_are_refused() -> None:
    """A config var name a shell could not hold is refused rather than written."""
    with pytest.raises(ValidationError):
        format_env({"BAD-NAME": "x"})
