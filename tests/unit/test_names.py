"""Name rules for apps, add-ons, attachments and config vars, including every boundary."""

from __future__ import annotations

import re

import pytest

from securekey.domain import names
from securekey.exceptions import ValidationError

NON_STRINGS: list[object] = [None, 42, 4.2, b"service-1", ["service-1"], object()]


@pytest.mark.parametrize("name", ["abc", "a" * 30, "service-1", "a-b-c", "app123", "x1-2"])
def test_valid_app_names_are_accepted_unchanged(name: str) -> None:
    """Lower-case letters, digits and dashes, starting with a letter, 3 to 30 chars, pass as-is."""
    assert names.check_app_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "ab",  # 2 chars: one under the minimum
        "a" * 31,  # one over the maximum
        "",
        "1app",  # starts with a digit
        "-app",  # starts with a dash
        "app-",  # ends with a dash
        "App",  # upper case
        "ser_vice",  # underscore
        "ser vice",
        "sérvice",  # non-ASCII letter
        "app\n",  # a trailing newline must not slip through a $-anchored regex
        "app\x00x",
    ],
)
def test_invalid_app_names_are_refused(name: str) -> None:
    """Every app name outside Heroku's rule is a ValidationError on the ``name`` field."""
    with pytest.raises(ValidationError) as info:
        names.check_app_name(name)
    assert info.value.field == "name"


@pytest.mark.parametrize(
    "check",
    [
        names.check_app_name,
        names.check_addon_name,
        names.check_attachment_name,
        names.check_config_var_name,
    ],
)
@pytest.mark.parametrize("value", NON_STRINGS, ids=lambda v: type(v).__name__)
def test_non_string_names_are_validation_errors(check: object, value: object) -> None:
    """A name that is not a string is refused with a ValidationError, never a TypeError."""
    with pytest.raises(ValidationError, match="must be a string"):
        check(value)  # type: ignore[operator]


@pytest.mark.parametrize(
    ("check", "valid"),
    [
        (names.check_app_name, "service-1"),
        (names.check_addon_name, "securekey-solid-1"),
        (names.check_attachment_name, "SECURE"),
        (names.check_config_var_name, "FOO"),
    ],
)
def test_nul_bytes_are_refused_in_every_name(check: object, valid: str) -> None:
    """A NUL byte anywhere in an otherwise valid name is refused with a message saying so."""
    for text in (valid + "\x00", "\x00" + valid, valid[:2] + "\x00" + valid[2:]):
        with pytest.raises(ValidationError, match="NUL"):
            check(text)  # type: ignore[operator]


@pytest.mark.parametrize("name", ["abc", "a" * 63, "securekey-solid-14332", "my-keys"])
def test_valid_addon_names_are_accepted(name: str) -> None:
    """Add-on names use the app alphabet and may be 3 to 63 characters long."""
    assert names.check_addon_name(name) == name


@pytest.mark.parametrize("name", ["ab", "a" * 64, "Bad Name", "1keys", "keys-", "keys_1", ""])
def test_invalid_addon_names_are_refused(name: str) -> None:
    """Add-on names outside the rule (length, case, leading digit, trailing dash) are refused."""
    with pytest.raises(ValidationError):
        names.check_addon_name(name)


@pytest.mark.parametrize("name", ["S", "SECURE", "SERVICE_ONE_SECURE", "A1_", "A" * 60])
def test_valid_attachment_names_are_accepted(name: str) -> None:
    """Attachment names: an upper-case letter, then A-Z, 0-9 and underscores, at most 60."""
    assert names.check_attachment_name(name) == name


@pytest.mark.parametrize("name", ["", "A" * 61, "secure", "_SECURE", "1SECURE", "SE-CURE", "SÉ"])
def test_invalid_attachment_names_are_refused(name: str) -> None:
    """Attachment names outside the rule are refused on the ``attachment.name`` field."""
    with pytest.raises(ValidationError) as info:
        names.check_attachment_name(name)
    assert info.value.field == "attachment.name"


@pytest.mark.parametrize("name", ["A", "_", "_PRIVATE", "FOO_BAR_9", "X" * 128])
def test_valid_config_var_names_are_accepted(name: str) -> None:
    """Config var names: upper-case letters, digits and underscores, not leading with a digit."""
    assert names.check_config_var_name(name) == name


@pytest.mark.parametrize("name", ["", "X" * 129, "foo", "9LIVES", "FOO-BAR", "FOO BAR", "FOO\n"])
def test_invalid_config_var_names_are_refused(name: str) -> None:
    """Config var names outside the rule, including 129 characters, are refused."""
    with pytest.raises(ValidationError) as info:
        names.check_config_var_name(name)
    assert info.value.field == "config_var"


def test_long_bad_config_var_names_are_shortened_in_the_message() -> None:
    """An error about a very long bad name does not repeat all of it."""
    with pytest.raises(ValidationError) as info:
        names.check_config_var_name("x" * 500)
    assert "x" * 41 not in info.value.message
    assert len(info.value.message) < 300


def test_attachment_var_name_appends_key() -> None:
    """The attachment SERVICE_ONE_SECURE sets the config var SERVICE_ONE_SECURE_KEY."""
    assert names.attachment_var_name("SECURE") == "SECURE_KEY"
    assert names.attachment_var_name("SERVICE_ONE_SECURE") == "SERVICE_ONE_SECURE_KEY"


def test_generated_addon_names_look_like_herokus_and_are_valid() -> None:
    """Generated names are securekey-<adjective>-<5 digits> and pass the add-on name rule."""
    seen = set()
    for _ in range(200):
        name = names.generate_addon_name()
        match = re.fullmatch(r"securekey-([a-z]+)-(\d{5})", name)
        assert match is not None, name
        assert match.group(1) in names.ADJECTIVES
        assert names.check_addon_name(name) == name
        seen.add(name)
    assert len(seen) > 150  # random, not a constant
