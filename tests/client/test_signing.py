"""Signed requests: the canonical string, the header, and the replay cache."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac

import pytest

from securekey.client import (
    Key,
    ReplayCache,
    Signature,
    VerificationError,
    canonical_request,
    sign_request,
)

KEY = Key("3F6D463C2A79289DC5B3C13A4EB2736B0D51A80234CAEAF0EA12D15F12E9FDEE")
NONCE = "00112233445566778899aabbccddeeff"


def test_the_canonical_string_is_pinned() -> None:
    """The signed bytes: version, method, host, target, ts, nonce, body digest, one per line."""
    message = canonical_request(
        "post", "/orders?id=7", 1700000000, NONCE, b'{"a":1}', host="Orders.Internal:443"
    )
    digest = hashlib.sha256(b'{"a":1}').hexdigest()
    expected = f"securekey-v2\nPOST\norders.internal\n/orders?id=7\n1700000000\n{NONCE}\n{digest}"
    assert message == expected.encode()


def test_a_known_vector_signs_the_same_forever() -> None:
    """A fixed key, request, time and nonce give a fixed header (a test vector for ports)."""
    header = sign_request(
        KEY, "GET", "/ping", b"", host="a:8001", timestamp=1700000000, nonce=NONCE
    )
    message = canonical_request("GET", "/ping", 1700000000, NONCE, b"", host="a:8001")
    sig = hmac.new(KEY.bytes, message, hashlib.sha256).hexdigest()
    assert header == f"keyid={KEY.fingerprint},ts=1700000000,nonce={NONCE},sig={sig}"
    assert KEY.hex not in header


def test_a_signature_matches_only_its_own_request() -> None:
    """Changing the method, target, body or key breaks the signature."""
    sig = Signature.parse(sign_request(KEY, "POST", "/a?x=1", b"body"))
    assert sig.matches(KEY, "POST", "/a?x=1", b"body")
    assert not sig.matches(KEY, "PUT", "/a?x=1", b"body")
    assert not sig.matches(KEY, "POST", "/a?x=2", b"body")
    assert not sig.matches(KEY, "POST", "/a?x=1", b"bodY")
    other = Key("CF8BBE474F57D9CA1DB402B2D19873E2F05ABED1213256FB761E166A2C8E6EBA")
    assert not sig.matches(other, "POST", "/a?x=1", b"body")


def test_two_signatures_of_one_request_differ() -> None:
    """A fresh nonce per request makes two identical requests distinguishable."""
    assert sign_request(KEY, "GET", "/", b"") != sign_request(KEY, "GET", "/", b"")


MALFORMED = [
    "",
    "keyid=abc",
    f"keyid={KEY.fingerprint},ts=1,nonce={NONCE}",
    f"keyid={KEY.fingerprint},ts=1,nonce={NONCE},sig={'0' * 63}",
    f"keyid={KEY.fingerprint},ts=-1,nonce={NONCE},sig={'0' * 64}",
    f"keyid={KEY.fingerprint},ts=1,nonce=short,sig={'0' * 64}",
    f"keyid={KEY.fingerprint.upper()},ts=1,nonce={NONCE},sig={'0' * 64}",
    f"keyid={KEY.fingerprint},keyid={KEY.fingerprint},ts=1,nonce={NONCE},sig={'0' * 64}",
    f"keyid={KEY.fingerprint},ts=1,nonce={NONCE},sig={'0' * 64},extra=1",
]


@pytest.mark.parametrize("header", MALFORMED)
def test_malformed_headers_are_refused(header: str) -> None:
    """Anything but exactly keyid, ts, nonce and sig in their forms is 'malformed'."""
    with pytest.raises(VerificationError) as caught:
        Signature.parse(header)
    assert caught.value.reason == "malformed"


def test_parse_and_format_round_trip() -> None:
    """A parsed header formats back to itself, whitespace aside."""
    header = sign_request(KEY, "GET", "/x", b"")
    spaced = header.replace(",", ", ")
    assert Signature.parse(spaced).format() == header


def _sig(ts: int, n: int) -> Signature:
    return Signature(KEY.fingerprint, ts, f"{n:032x}", f"{n:064x}")


def test_the_replay_cache_refuses_a_second_sighting() -> None:
    """remember() is True once per signature, False after."""
    cache = ReplayCache()
    assert cache.remember(_sig(100, 1), now=100, window=300)
    assert not cache.remember(_sig(100, 1), now=101, window=300)
    assert cache.remember(_sig(100, 2), now=101, window=300)


def test_the_replay_cache_forgets_what_left_the_window() -> None:
    """Entries older than their timestamp plus the window are dropped."""
    cache = ReplayCache()
    cache.remember(_sig(100, 1), now=100, window=10)
    cache.remember(_sig(200, 2), now=200, window=10)
    assert len(cache) == 1


def test_a_full_replay_cache_refuses_what_it_can_no_longer_prove_new() -> None:
    """When full, the cache evicts the oldest and then refuses anything at least that old."""
    cache = ReplayCache(max_entries=2)
    assert cache.remember(_sig(100, 1), now=100, window=300)
    assert cache.remember(_sig(101, 2), now=101, window=300)
    assert cache.remember(_sig(102, 3), now=102, window=300)  # evicts ts=100
    assert len(cache) == 2
    assert not cache.remember(_sig(100, 1), now=103, window=300)  # would be a replay
    assert not cache.remember(_sig(100, 9), now=103, window=300)  # cannot be told apart
    assert cache.remember(_sig(103, 4), now=103, window=300)


def test_the_replay_cache_needs_room() -> None:
    """A cache of no entries is a configuration mistake."""
    with pytest.raises(ValueError, match="at least 1"):
        ReplayCache(max_entries=0)


def test_fields_in_any_order_parse_like_the_written_form() -> None:
    """The header as sign_request writes it and the same fields reordered give one Signature."""
    header = sign_request(KEY, "GET", "/x", b"")
    written = Signature.parse(header)
    reordered = Signature.parse(", ".join(reversed(header.split(","))))
    assert reordered == written
    assert (written.keyid, written.nonce) == (KEY.fingerprint, header.split("nonce=")[1][:32])
    assert f"sig={written.sig}" in header
    assert f"ts={written.timestamp}" in header


def test_a_parsed_signature_is_an_ordinary_frozen_signature() -> None:
    """What parse returns equals, hashes and reprs like Signature(...) and cannot be changed."""
    header = sign_request(KEY, "GET", "/x", b"", timestamp=1700000000, nonce=NONCE)
    parsed = Signature.parse(header)
    built = Signature(KEY.fingerprint, 1700000000, NONCE, header.rsplit("sig=", 1)[1])
    assert parsed == built
    assert hash(parsed) == hash(built)
    assert repr(parsed) == repr(built)
    assert type(parsed) is Signature
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.sig = "0" * 64  # type: ignore[misc]
