"""Encryption at rest: AES-256-GCM under the master key, with the owner bound as associated data.

A ciphertext is ``0x01 || nonce(12) || AES-GCM(ct || tag)``; the leading byte leaves room for
re-keying later. Binding (add-on id, key version) as associated data means a ciphertext copied
to another row does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from securekey.exceptions import ConfigurationError, IntegrityError

__all__ = ["Cipher", "MasterKey"]

log = logging.getLogger("securekey.crypto")

_FORMAT = b"\x01"
_NONCE = 12


class MasterKey:
    """The 32-byte key that encrypts everything stored; its repr never shows it."""

    __slots__ = ("_raw",)

    def __init__(self, raw: bytes) -> None:
        if len(raw) != 32:
            raise ConfigurationError("The master key must be exactly 32 bytes.")
        self._raw = raw

    @classmethod
    def from_base64(cls, text: str) -> MasterKey:
        """Read a master key given as base64 of 32 bytes (``SECUREKEY_MASTER_KEY``)."""
        try:
            raw = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigurationError(
                "SECUREKEY_MASTER_KEY is not valid base64 of 32 bytes; generate one with "
                "`openssl rand -base64 32`."
            ) from None
        if len(raw) != 32:
            raise ConfigurationError(f"The master key must decode to 32 bytes, not {len(raw)}.")
        return cls(raw)

    @classmethod
    def generate(cls) -> MasterKey:
        """A new random master key."""
        return cls(secrets.token_bytes(32))

    @classmethod
    def from_file(cls, path: Path) -> MasterKey:
        """Read a key file holding base64 of 32 bytes."""
        try:
            text = path.read_text(encoding="ascii")
        except OSError as exc:
            raise ConfigurationError(
                f"Cannot read the master key file {path}: {exc.strerror}."
            ) from None
        except UnicodeDecodeError:
            raise ConfigurationError(f"The master key file {path} is not base64 text.") from None
        return cls.from_base64(text)

    @classmethod
    def load_or_create(cls, path: Path) -> MasterKey:
        """Read ``path``, or create it (mode 0600) with a new key and warn where it is."""
        if path.exists():
            return cls.from_file(path)
        key = cls.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(base64.b64encode(key._raw).decode() + "\n")
        log.warning(
            "Generated a new master key at %s (mode 0600). Back it up: without it the stored "
            "keys cannot be decrypted.",
            path,
        )
        return key

    def to_base64(self) -> str:
        """The key as base64 text, for writing a key file."""
        return base64.b64encode(self._raw).decode()

    def derive(self, purpose: bytes) -> bytes:
        """A 32-byte subkey for one purpose (HMAC-based, as HKDF-Expand with one block)."""
        return hmac.new(self._raw, b"securekey/" + purpose + b"\x01", hashlib.sha256).digest()

    def __repr__(self) -> str:
        return "MasterKey(<redacted>)"


class Cipher:
    """Authenticated encryption of stored values, and keyed fingerprints of config snapshots."""

    __slots__ = ("_aead", "_fp_key", "_token_key")

    def __init__(self, master: MasterKey) -> None:
        self._aead = AESGCM(master.derive(b"aes-gcm-v1"))
        self._fp_key = master.derive(b"config-fingerprint-v1")
        self._token_key = master.derive(b"token-digest-v1")

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        """Encrypt ``plaintext`` bound to ``aad`` under a fresh random nonce."""
        nonce = secrets.token_bytes(_NONCE)
        return _FORMAT + nonce + self._aead.encrypt(nonce, plaintext, aad)

    def decrypt(self, blob: bytes, aad: bytes) -> bytes:
        """Decrypt a value from ``encrypt``; any tampering or wrong key is ``IntegrityError``."""
        if len(blob) < 1 + _NONCE + 16 or blob[:1] != _FORMAT:
            raise IntegrityError("A stored value is malformed; the database may be damaged.")
        try:
            return self._aead.decrypt(blob[1 : 1 + _NONCE], blob[1 + _NONCE :], aad)
        except InvalidTag:
            raise IntegrityError(
                "A stored value failed authentication: wrong master key or tampered data."
            ) from None

    def fingerprint(self, data: bytes) -> str:
        """A keyed 16-hex-digit fingerprint: names a config snapshot without revealing it."""
        return hmac.new(self._fp_key, data, hashlib.sha256).hexdigest()[:16]

    def token_digest(self, sha256_hex: str) -> str:
        """The stored form of a token: HMAC-SHA256, under a key derived from the master key,
        of the token's SHA-256 (hex in, hex out).

        Keyed, so a dumped database without the master key does not let a weak token be
        guessed offline; over the SHA-256 rather than the token itself, so digests stored
        before keying existed can be converted in place without knowing any token.
        """
        return hmac.new(self._token_key, bytes.fromhex(sha256_hex), hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return "Cipher(<redacted>)"
