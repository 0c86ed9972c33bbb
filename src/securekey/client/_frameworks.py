"""Settings values for Django, Flask and itsdangerous, computed from a key pair.

Each library orders keys its own way, so the order is spelled out here once:
Django and Flask take ``SECRET_KEY`` = LATEST and ``SECRET_KEY_FALLBACKS`` = [PREVIOUS];
itsdangerous takes a list ordered oldest to newest and signs with the last one.
None of these imports the framework: they only compute values.
"""

from __future__ import annotations

from typing import Any

from securekey.client._ring import KeyRing
from securekey.domain.keys import KeyPair, parse_pair

__all__ = ["django_settings", "flask_config", "itsdangerous_keys"]

PairSource = KeyRing | KeyPair | str


def _pair(source: PairSource) -> KeyPair:
    if isinstance(source, KeyRing):
        return source.current
    if isinstance(source, KeyPair):
        return source
    return parse_pair(source)


def django_settings(source: PairSource) -> dict[str, Any]:
    """``{"SECRET_KEY": LATEST, "SECRET_KEY_FALLBACKS": [PREVIOUS]}`` for settings.py.

    ``globals().update(django_settings(os.environ["SECURE_KEY"]))``
    """
    pair = _pair(source)
    return {"SECRET_KEY": pair.latest.hex, "SECRET_KEY_FALLBACKS": [pair.previous.hex]}


def flask_config(source: PairSource) -> dict[str, Any]:
    """``{"SECRET_KEY_FALLBACKS": [PREVIOUS], "SECRET_KEY": LATEST}`` for ``app.config``.

    Live: ``ring.on_change(lambda pair: app.config.update(flask_config(pair)))``. Flask reads
    both on every request and ``update`` sets them one after the other, so the fallbacks come
    first: between the two steps the keys accepted are then [new PREVIOUS, old LATEST], the
    same key twice; the other order would briefly accept [old PREVIOUS, new LATEST] and drop
    sessions signed with the old LATEST, which stay valid as the new PREVIOUS.
    """
    pair = _pair(source)
    return {"SECRET_KEY_FALLBACKS": [pair.previous.hex], "SECRET_KEY": pair.latest.hex}


def itsdangerous_keys(source: PairSource) -> list[str]:
    """``[PREVIOUS, LATEST]``: itsdangerous verifies with any and signs with the last."""
    pair = _pair(source)
    return [pair.previous.hex, pair.latest.hex]
