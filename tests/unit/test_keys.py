"""Keys and key pairs: format, fingerprints, parsing and the LATEST-then-PREVIOUS check order."""

from __future__ import annotations

import hmac
import re

import pytest

from securekey.domain import keys
from securekey.domain.keys import Key, KeyPair, fingerprint, generate_key, parse_pair
from securekey.exceptions import ValidationError

ZERO = "00" * 32
# SHA-256 of 32 zero bytes is 66687aadf862bd77...: a fixed vector, not the code's own formula.
ZERO_FINGERPRINT = "66687aadf862"


def test_generated_keys_are_64_upper_case_hex_and_random() -> None:
    """A key is 32 CSPRNG bytes as 64 upper-case hex digits; no two draws repeat."""
    drawn = [generate_key() for _ in range(50)]
    for key in drawn:
        assert re.fullmatch(r"[0-9A-F]{64}", key.hex)
        assert len(key.bytes) == 32
        assert key.bytes.hex().upper() == key.hex
    assert len({k.hex for k in drawn}) == 50


def test_pair_value_is_latest_comma_previous_129_chars() -> None:
    """The config var value is LATEST,PREVIOUS: 64 + 1 + 64 = 129 characters."""
    pair = KeyPair.fresh()
    assert len(pair.value) == 129
    assert pair.value == f"{pair.latest.hex},{pair.previous.hex}"
    assert pair.value[64] == ","
    assert pair.latest != pair.previous


def test_fingerprint_is_first_12_hex_of_sha256_of_key_bytes() -> None:
    """The fingerprint hashes the 32 key bytes (not the hex text) and keeps 12 hex digits."""
    assert fingerprint(ZERO) == ZERO_FINGERPRINT
    assert Key(ZERO).fingerprint == ZERO_FINGERPRINT
    # Hashing the hex text instead of the bytes would give another value.
    assert fingerprint("AB" * 32) == fingerprint("ab" * 32)
    assert re.fullmatch(r"[0-9a-f]{12}", generate_key().fingerprint)


def test_pair_fingerprints_are_latest_then_previous() -> None:
    """KeyPair.fingerprints names (latest, previous) in that order."""
    pair = KeyPair(Key(ZERO), Key("11" * 32))
    assert pair.fingerprints == (ZERO_FINGERPRINT, fingerprint("11" * 32))


@pytest.mark.parametrize(
    "bad", ["ab" * 32, "A" * 63, "A" * 65, "G" * 64, "", " " + "A" * 63, None, 12, b"A" * 64]
)
def test_key_refuses_anything_but_64_upper_hex(bad: object) -> None:
    """Key accepts only 64 upper-case hex characters (lower case is parse_pair's job)."""
    with pytest.raises(ValidationError):
        Key(bad)  # type: ignore[arg-type]


def test_parse_pair_accepts_lower_case_and_spaces_and_normalises() -> None:
    """parse_pair takes any case with stray spaces and returns upper-case keys in order."""
    pair = KeyPair.fresh()
    text = f"  {pair.latest.hex.lower()} , {pair.previous.hex.lower()}\n"
    assert parse_pair(text) == pair


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "A" * 64,
        "A" * 64 + ",",
        ",".join(["A" * 64] * 3),
        "A" * 64 + "," + "B" * 63,
        "A" * 64 + ";" + "B" * 64,
        "Z" * 64 + "," + "B" * 64,
    ],
)
def test_parse_pair_refuses_malformed_values(bad: str) -> None:
    """A value that is not exactly two 64-hex keys joined by a comma is a ValidationError."""
    with pytest.raises(ValidationError) as info:
        parse_pair(bad)
    assert info.value.field == "value"


def test_rotated_moves_latest_to_previous() -> None:
    """KeyPair.rotated(): PREVIOUS := LATEST, LATEST := the new key."""
    pair = KeyPair.fresh()
    new = generate_key()
    rotated = pair.rotated(new)
    assert rotated == KeyPair(latest=new, previous=pair.latest)
    with pytest.raises(ValidationError):
        pair.rotated(pair.latest)


def test_match_checks_latest_first_then_previous() -> None:
    """match() says 'latest' or 'previous' (any case), latest winning, None for a stranger."""
    pair = KeyPair.fresh()
    assert pair.match(pair.latest.hex) == "latest"
    assert pair.match(pair.previous.hex.lower()) == "previous"
    assert pair.match(generate_key().hex) is None
    assert pair.match("") is None
    same = KeyPair(Key(ZERO), Key(ZERO))
    assert same.match(ZERO) == "latest"


@pytest.fixture
def compare_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[object, object]]:
    """Record every hmac.compare_digest call the keys module makes (the real one still runs)."""
    calls: list[tuple[object, object]] = []
    real = hmac.compare_digest

    def spy(a: object, b: object) -> bool:
        calls.append((a, b))
        return real(a, b)  # type: ignore[arg-type]

    monkeypatch.setattr(keys.hmac, "compare_digest", spy)
    return calls


def test_match_compares_both_keys_in_constant_time_whatever_matches(
    compare_calls: list[tuple[object, object]],
) -> None:
    """match() always runs compare_digest against both keys, so timing does not tell which hit."""
    pair = KeyPair.fresh()
    for presented in (pair.latest.hex, pair.previous.hex, generate_key().hex):
        compare_calls.clear()
        pair.match(presented)
        assert len(compare_calls) == 2
        compared = {bytes(a) for a, _ in compare_calls}  # type: ignore[arg-type]
        assert compared == {pair.latest.hex.encode(), pair.previous.hex.encode()}


def test_by_fingerprint_finds_the_slot(compare_calls: list[tuple[object, object]]) -> None:
    """by_fingerprint names LATEST first, then PREVIOUS, via constant-time comparison."""
    pair = KeyPair.fresh()
    assert pair.by_fingerprint(pair.latest.fingerprint) == ("latest", pair.latest)
    assert pair.by_fingerprint(pair.previous.fingerprint.upper()) == ("previous", pair.previous)
    assert pair.by_fingerprint("000000000000") is None
    assert compare_calls


def test_repr_and_str_show_fingerprints_only() -> None:
    """repr()/str() of a Key and a KeyPair show fingerprints, never the hex material."""
    pair = KeyPair.fresh()
    for obj in (pair, pair.latest, pair.previous):
        for text in (repr(obj), str(obj), f"{obj}", f"{obj!r}"):
            assert pair.latest.hex not in text.upper()
            assert pair.previous.hex not in text.upper()
    assert pair.latest.fingerprint in repr(pair)
    assert pair.previous.fingerprint in str(pair.previous)
