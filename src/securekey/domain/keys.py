"""Keys and key pairs: generation, the ``LATEST,PREVIOUS`` format, fingerprints, the check order.

A ``Key`` never shows its material in ``repr``/``str``; only ``.hex`` hands it out, on purpose.
The order rule lives here once: present LATEST; accept LATEST, then PREVIOUS, compared in
constant time. (Django's fallback list runs the other way: newest first, then older ones.)
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Literal

from securekey.exceptions import ValidationError

__all__ = [
    "KEY_BYTES",
    "Key",
    "KeyPair",
    "Slot",
    "fingerprint",
    "generate_key",
    "parse_pair",
]

KEY_BYTES = 32
_HEX_KEY = re.compile(r"[0-9A-F]{64}")
Slot = Literal["latest", "previous"]


def fingerprint(key_hex: str) -> str:
    """The public name of a key: the first 12 hex digits of SHA-256 over its bytes.

    Safe to log and to send: keys are 256 random bits, so the digest reveals nothing usable.
    """
    return hashlib.sha256(bytes.fromhex(key_hex)).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Key:
    """One 256-bit key as 64 upper-case hex digits; its repr shows only the fingerprint."""

    hex: str

    def __post_init__(self) -> None:
        if not isinstance(self.hex, str) or not _HEX_KEY.fullmatch(self.hex):
            raise ValidationError("key", "A key must be 64 upper-case hexadecimal characters.")

    @property
    def fingerprint(self) -> str:
        """First 12 hex digits of SHA-256 of the key bytes."""
        return fingerprint(self.hex)

    @property
    def bytes(self) -> bytes:
        """The raw 32 key bytes (for HMAC signing)."""
        return bytes.fromhex(self.hex)

    # ``builtins.bytes``: inside this class ``bytes`` names the property above.
    def sign(self, message: builtins.bytes) -> str:
        """HMAC-SHA256 of ``message`` under this key, as lower-case hex: the one place for it."""
        return hmac.new(self.bytes, message, hashlib.sha256).hexdigest()

    def signed(self, message: builtins.bytes, signature: str) -> bool:
        """Whether ``signature`` (hex, any case) is this key's over ``message``; constant time."""
        return hmac.compare_digest(self.sign(message).encode(), signature.lower().encode())

    def matches(self, presented: str) -> bool:
        """Constant-time comparison with a presented key (any case)."""
        return hmac.compare_digest(self.hex.encode(), presented.upper().encode())

    def __repr__(self) -> str:
        return f"Key(fingerprint={self.fingerprint!r})"

    __str__ = __repr__


def generate_key() -> Key:
    """A fresh key from the operating system's CSPRNG."""
    return Key(secrets.token_bytes(KEY_BYTES).hex().upper())


@dataclass(frozen=True, slots=True)
class KeyPair:
    """The rotating pair: LATEST is presented and signs; PREVIOUS is still accepted."""

    latest: Key
    previous: Key

    @classmethod
    def fresh(cls) -> KeyPair:
        """Two independent new keys, as an add-on has at creation."""
        latest, previous = generate_key(), generate_key()
        while latest.hex == previous.hex:  # pragma: no cover - 2**-256
            latest = generate_key()
        return cls(latest, previous)

    def rotated(self, new: Key | None = None) -> KeyPair:
        """PREVIOUS := LATEST, LATEST := a new key."""
        key = new or generate_key()
        if key.hex == self.latest.hex:
            raise ValidationError("key", "A rotation must introduce a new key.")
        return KeyPair(latest=key, previous=self.latest)

    @property
    def value(self) -> str:
        """The config var value ``LATEST,PREVIOUS`` (129 characters)."""
        return f"{self.latest.hex},{self.previous.hex}"

    @property
    def fingerprints(self) -> tuple[str, str]:
        """(latest, previous) fingerprints: a cheap way to tell whether the pair changed."""
        return (self.latest.fingerprint, self.previous.fingerprint)

    def match(self, presented: str) -> Slot | None:
        """Which key ``presented`` is: checks LATEST, then PREVIOUS, both in constant time."""
        latest = self.latest.matches(presented)
        previous = self.previous.matches(presented)
        if latest:
            return "latest"
        if previous:
            return "previous"
        return None

    def by_fingerprint(self, fp: str) -> tuple[Slot, Key] | None:
        """The key a fingerprint names (LATEST first), or None."""
        for slot, key in (("latest", self.latest), ("previous", self.previous)):
            if hmac.compare_digest(key.fingerprint, fp.lower()):
                return slot, key  # type: ignore[return-value]
        return None

    def __repr__(self) -> str:
        return f"KeyPair(latest={self.latest!r}, previous={self.previous!r})"

    __str__ = __repr__


def parse_pair(value: object) -> KeyPair:
    """Parse a ``LATEST,PREVIOUS`` config var value, with an error that never echoes it."""
    if not isinstance(value, str):
        raise ValidationError("value", "A key pair value must be a string LATEST,PREVIOUS.")
    parts = value.strip().split(",")
    if len(parts) != 2:
        raise ValidationError(
            "value", f"A key pair value is two keys joined by a comma; got {len(parts)} part(s)."
        )
    latest, previous = (p.strip().upper() for p in parts)
    for slot, text in (("LATEST", latest), ("PREVIOUS", previous)):
        if not _HEX_KEY.fullmatch(text):
            raise ValidationError(
                "value", f"The {slot} key must be 64 hexadecimal characters (got {len(text)})."
            )
    return KeyPair(Key(latest), Key(previous))
