"""Encryption at rest: AES-256-GCM under the master key, with the owner bound as associated data.

A ciphertext is ``0x02 || key id(8) || nonce(12) || AES-GCM(ct || tag)``: the key id names the
master key that wrote it, so during a master-key rotation a process holding the new key and the
old one opens both, and the rotation finds what is left to re-encrypt. Format ``0x01`` (no key
id, before rotation existed) is still read. Binding (add-on id, key version) as associated data
means a ciphertext copied to another row does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from securekey.exceptions import ConfigurationError, DecryptionError

__all__ = ["Cipher", "MasterKey", "ensure_private_dir", "write_private_file"]

log = logging.getLogger("securekey.crypto")

_LEGACY = b"\x01"
_FORMAT = b"\x02"
_KEY_ID = 8
_NONCE = 12
_TAG = 16
#: The constant a check value encrypts: opening it proves a key is the database's.
_CHECK_PLAINTEXT = b"securekey master key check v1"


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` (and parents) as 0700; warn if an existing one is open to others."""
    if not path.exists():
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            path.chmod(0o700)  # mkdir's mode is filtered by the umask; this is not
        except OSError as exc:
            raise ConfigurationError(
                f"Cannot create the data directory {path}: {exc.strerror}. Choose another "
                "--data-dir or create it for this user."
            ) from None
        return
    if not path.is_dir():
        raise ConfigurationError(
            f"The data directory {path} is not a directory: point --data-dir at a directory."
        )
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning(
            "The data directory %s has mode %o: other users may read the database. "
            "Run `chmod 700 %s`.",
            path,
            mode,
            path,
        )


def write_private_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename) with mode 0600."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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
        ensure_private_dir(path.parent)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise ConfigurationError(
                f"Cannot create the master key file {path}: {exc.strerror}."
            ) from None
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

    @property
    def key_id(self) -> str:
        """16 hex digits naming this key (a keyed digest: it reveals nothing about the key)."""
        return self.derive(b"key-id").hex()[: 2 * _KEY_ID]

    def __repr__(self) -> str:
        return "MasterKey(<redacted>)"


class Cipher:
    """Authenticated encryption of stored values, and keyed fingerprints of config snapshots.

    ``master`` encrypts; ``previous`` keys (during a master-key rotation) only decrypt. Each
    ciphertext names its key by id, so a decryption never has to guess. ``adopt`` switches a
    running process to a new master key (the old one keeps decrypting) without a restart.
    """

    __slots__ = ("_aeads", "_fp_key", "_master", "_previous", "_token_key")

    def __init__(self, master: MasterKey, previous: Sequence[MasterKey] = ()) -> None:
        self._master = master
        self._previous = tuple(k for k in previous if k.key_id != master.key_id)
        self._aeads = {k.key_id: AESGCM(k.derive(b"aes-gcm-v1")) for k in (master, *previous)}
        self._fp_key = master.derive(b"config-fingerprint-v1")
        self._token_key = master.derive(b"token-digest-v1")

    @property
    def master(self) -> MasterKey:
        """The current master key (the one that encrypts); derive subkeys from it."""
        return self._master

    @property
    def key_id(self) -> str:
        """The id of the key new ciphertexts are written under."""
        return self._master.key_id

    @property
    def previous(self) -> tuple[MasterKey, ...]:
        """Older master keys this cipher still opens (never writes with)."""
        return self._previous

    def holds(self, key_id: str) -> bool:
        """True if this cipher can open values written under master key ``key_id``."""
        return key_id in self._aeads

    def adopt(self, new: MasterKey) -> None:
        """Write under ``new`` from now on; every key held so far keeps decrypting."""
        if new.key_id == self.key_id:
            return
        aeads = dict(self._aeads)
        aeads[new.key_id] = AESGCM(new.derive(b"aes-gcm-v1"))
        old = self._master
        # Readers see either the old or the new state: each attribute is replaced whole.
        self._aeads = aeads
        self._previous = (old, *(k for k in self._previous if k.key_id != new.key_id))
        self._fp_key = new.derive(b"config-fingerprint-v1")
        self._master = new

    def wrap(self, key: MasterKey) -> bytes:
        """``key`` encrypted under the current master key (to hand it to other replicas)."""
        return self.encrypt(key._raw, b"master-key-wrap:" + key.key_id.encode())

    def unwrap(self, key_id: str, blob: bytes) -> MasterKey:
        """The master key ``key_id`` from its wrapped form; ``DecryptionError`` if it fails."""
        key = MasterKey(self.decrypt(blob, b"master-key-wrap:" + key_id.encode()))
        if key.key_id != key_id:
            raise DecryptionError("A wrapped master key does not match its id.")
        return key

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        """Encrypt ``plaintext`` bound to ``aad`` under a fresh random nonce."""
        nonce = secrets.token_bytes(_NONCE)
        master = self._master
        aead = self._aeads[master.key_id]
        return _FORMAT + bytes.fromhex(master.key_id) + nonce + aead.encrypt(nonce, plaintext, aad)

    def decrypt(self, blob: bytes, aad: bytes) -> bytes:
        """Decrypt a value from ``encrypt``; any tampering or wrong key is ``DecryptionError``."""
        if blob[:1] == _LEGACY and len(blob) >= 1 + _NONCE + _TAG:
            nonce, body = blob[1 : 1 + _NONCE], blob[1 + _NONCE :]
            for aead in self._aeads.values():
                try:
                    return aead.decrypt(nonce, body, aad)
                except InvalidTag:
                    continue
            raise DecryptionError(
                "A stored value failed authentication: wrong master key or tampered data."
            )
        if blob[:1] != _FORMAT or len(blob) < 1 + _KEY_ID + _NONCE + _TAG:
            raise DecryptionError("A stored value is malformed; the database may be damaged.")
        key_id = blob[1 : 1 + _KEY_ID].hex()
        found = self._aeads.get(key_id)
        if found is None:
            raise DecryptionError(
                f"A stored value is encrypted under master key {key_id}, which this process "
                "does not hold: start it with that key (SECUREKEY_MASTER_KEY, or "
                "SECUREKEY_OLD_MASTER_KEY during a master-key rotation)."
            )
        start = 1 + _KEY_ID
        try:
            return found.decrypt(blob[start : start + _NONCE], blob[start + _NONCE :], aad)
        except InvalidTag:
            raise DecryptionError(
                "A stored value failed authentication: wrong master key or tampered data."
            ) from None

    @staticmethod
    def key_id_of(blob: bytes) -> str | None:
        """The id of the master key ``blob`` was written under (None for the legacy format)."""
        if blob[:1] == _FORMAT and len(blob) >= 1 + _KEY_ID:
            return blob[1 : 1 + _KEY_ID].hex()
        return None

    def is_current(self, blob: bytes) -> bool:
        """True if ``blob`` is written under the current master key (nothing to re-encrypt)."""
        return self.key_id_of(blob) == self.key_id

    def reencrypt(self, blob: bytes, aad: bytes) -> bytes:
        """``blob`` opened with whichever key wrote it and sealed again under the current key."""
        return self.encrypt(self.decrypt(blob, aad), aad)

    def check_value(self) -> bytes:
        """A check value for the current key: the encryption of a constant, bound to its id."""
        return self.encrypt(_CHECK_PLAINTEXT, b"master-key-check:" + self.key_id.encode())

    def opens_check_value(self, key_id: str, blob: bytes) -> bool:
        """True if ``blob`` is ``key_id``'s check value and this cipher holds that key."""
        if self.key_id_of(blob) != key_id or key_id not in self._aeads:
            return False
        try:
            plain = self.decrypt(blob, b"master-key-check:" + key_id.encode())
        except DecryptionError:
            return False
        return hmac.compare_digest(plain, _CHECK_PLAINTEXT)

    def fingerprint(self, data: bytes) -> str:
        """A keyed 16-hex-digit fingerprint: names a config snapshot without revealing it."""
        return hmac.new(self._fp_key, data, hashlib.sha256).hexdigest()[:16]

    def initial_token_key(self) -> bytes:
        """The token-digest key a new database starts with (derived from its first master key).

        The store keeps it, encrypted, in ``server_secrets`` and hands it back through
        ``use_token_key`` on every start, so it survives master-key rotations.
        """
        return self._master.derive(b"token-digest-v1")

    def use_token_key(self, key: bytes) -> None:
        """Make token digests under ``key`` (the one the database holds)."""
        if len(key) != 32:
            raise DecryptionError("The stored token-digest key is not 32 bytes.")
        self._token_key = key

    def token_digest(self, sha256_hex: str) -> str:
        """The stored form of a token: HMAC-SHA256, under the database's token-digest key
        (kept encrypted under the master key), of the token's SHA-256 (hex in, hex out).

        Keyed, so a dumped database without the master key does not let a weak token be
        guessed offline; over the SHA-256 rather than the token itself, so digests stored
        before keying existed can be converted in place without knowing any token.
        """
        return hmac.new(self._token_key, bytes.fromhex(sha256_hex), hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return "Cipher(<redacted>)"
