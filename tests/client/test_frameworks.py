"""Framework settings helpers: each library's key order, computed without the library."""

from __future__ import annotations

import pytest

from securekey.client import (
    KeyPair,
    StaticKeyRing,
    django_settings,
    flask_config,
    itsdangerous_keys,
)
from securekey.exceptions import ValidationError


def test_django_gets_latest_as_secret_key_and_previous_as_fallback() -> None:
    """SECRET_KEY is LATEST and SECRET_KEY_FALLBACKS is [PREVIOUS], from a value string."""
    pair = KeyPair.fresh()
    assert django_settings(pair.value) == {
        "SECRET_KEY": pair.latest.hex,
        "SECRET_KEY_FALLBACKS": [pair.previous.hex],
    }


def test_flask_gets_the_same_shape_from_a_ring() -> None:
    """Flask's config keys match Django's names and order, and follow the ring's pair."""
    ring = StaticKeyRing()
    config = flask_config(ring)
    assert config["SECRET_KEY"] == ring.current.latest.hex
    assert config["SECRET_KEY_FALLBACKS"] == [ring.current.previous.hex]


def test_flask_config_can_follow_rotations_through_on_change() -> None:
    """The documented on_change recipe keeps a config mapping current."""
    ring = StaticKeyRing()
    app_config: dict[str, object] = dict(flask_config(ring))
    ring.on_change(lambda pair: app_config.update(flask_config(pair)))
    new = ring.rotate()
    assert app_config["SECRET_KEY"] == new.latest.hex
    assert app_config["SECRET_KEY_FALLBACKS"] == [new.previous.hex]


def test_itsdangerous_keys_are_oldest_first_so_the_newest_signs() -> None:
    """itsdangerous signs with the last key: the list is [PREVIOUS, LATEST]."""
    pair = KeyPair.fresh()
    assert itsdangerous_keys(pair) == [pair.previous.hex, pair.latest.hex]


def test_itsdangerous_really_signs_with_latest_and_accepts_previous() -> None:
    """With itsdangerous installed, the list makes it sign with LATEST and verify PREVIOUS."""
    itsdangerous = pytest.importorskip("itsdangerous")
    p1 = KeyPair.fresh()
    p2 = p1.rotated()
    old = itsdangerous.Signer(itsdangerous_keys(p1)).sign(b"x")
    signer = itsdangerous.Signer(itsdangerous_keys(p2))
    assert signer.unsign(old) == b"x"
    assert itsdangerous.Signer(p2.latest.hex).unsign(signer.sign(b"y")) == b"y"


def test_helpers_refuse_a_malformed_value() -> None:
    """A bad value string raises ValidationError, as parse_pair does."""
    with pytest.raises(ValidationError):
        django_settings("nope")
