"""Encryption at rest: AES-256-GCM round trips, authentication failures, and master keys."""

from __future__ import annotations

import base64
import secrets

import pytest

from securekey.crypto import Cipher, MasterKey
from securekey.exceptions import ConfigurationError, DecryptionError

AAD = b"key:addon-1:2"
PLAIN = b"3F6D" * 16


@pytest.fixture
def cipher() -> Cipher:
    """A cipher under a fresh master key."""
    return Cipher(MasterKey.generate())


def test_round_trip(cipher: Cipher) -> None:
    """What is encrypted with some associated data decrypts back with the same data."""
    blob = cipher.encrypt(PLAIN, AAD)
    assert cipher.decrypt(blob, AAD) == PLAIN
    assert cipher.decrypt(cipher.encrypt(b"", AAD), AAD) == b""


def test_ciphertext_hides_the_plaintext_and_uses_fresh_nonces(cipher: Cipher) -> None:
    """The blob is format byte + key id + nonce + ct + tag; equal inputs never repeat."""
    one, two = cipher.encrypt(PLAIN, AAD), cipher.encrypt(PLAIN, AAD)
    assert one != two
    assert one[:1] == b"\x02"
    assert one[1:9].hex() == cipher.key_id
    assert len(one) == 1 + 8 + 12 + len(PLAIN) + 16
    assert PLAIN not in one
    assert PLAIN[:8] not in one


def test_wrong_associated_data_fails(cipher: Cipher) -> None:
    """A ciphertext moved to another row (other add-on or version) does not decrypt."""
    blob = cipher.encrypt(PLAIN, AAD)
    for other in (b"key:addon-1:3", b"key:addon-2:2", b"", AAD + b"\x00"):
        with pytest.raises(DecryptionError, match="failed authentication"):
            cipher.decrypt(blob, other)


def test_wrong_master_key_fails(cipher: Cipher) -> None:
    """A ciphertext does not decrypt under another master key."""
    blob = cipher.encrypt(PLAIN, AAD)
    with pytest.raises(DecryptionError):
        Cipher(MasterKey.generate()).decrypt(blob, AAD)


@pytest.mark.parametrize(
    "where", [9, 13, 21, 28, -1], ids=["nonce0", "nonce4", "ct0", "ct7", "tag"]
)
def test_any_flipped_bit_fails(cipher: Cipher, where: int) -> None:
    """Flipping a bit in the nonce, the ciphertext or the tag makes decryption fail."""
    blob = bytearray(cipher.encrypt(PLAIN, AAD))
    blob[where] ^= 0x01
    with pytest.raises(DecryptionError):
        cipher.decrypt(bytes(blob), AAD)


@pytest.mark.parametrize(
    "blob",
    [b"", b"\x01", b"\x01" + b"\x00" * 27, b"\x02" + b"\x00" * 35, b"\x03" + b"\x00" * 60],
    ids=repr,
)
def test_malformed_blobs_fail_cleanly(cipher: Cipher, blob: bytes) -> None:
    """Truncated blobs or an unknown format byte are DecryptionError, not a crash."""
    with pytest.raises(DecryptionError, match="malformed"):
        cipher.decrypt(blob, AAD)


def test_same_base64_key_decrypts_across_instances() -> None:
    """A master key read back from its base64 decrypts what the original encrypted."""
    master = MasterKey.generate()
    blob = Cipher(master).encrypt(PLAIN, AAD)
    again = MasterKey.from_base64(master.to_base64())
    assert Cipher(again).decrypt(blob, AAD) == PLAIN


@pytest.mark.parametrize(
    "text",
    [
        "not base64!",
        "",
        base64.b64encode(b"x" * 31).decode(),
        base64.b64encode(b"x" * 33).decode(),
        "é" * 44,
        base64.b64encode(b"x" * 32).decode()[:-2],
    ],
)
def test_bad_base64_master_keys_are_configuration_errors(text: str) -> None:
    """A master key that is not base64 of exactly 32 bytes is refused at start-up."""
    with pytest.raises(ConfigurationError):
        MasterKey.from_base64(text)


def test_raw_master_key_must_be_32_bytes() -> None:
    """MasterKey refuses raw keys of any other length."""
    for raw in (b"", b"x" * 16, b"x" * 31, b"x" * 33):
        with pytest.raises(ConfigurationError):
            MasterKey(raw)


def test_subkeys_differ_by_purpose_and_master() -> None:
    """Derived subkeys are 32 bytes, distinct per purpose and per master key."""
    master = MasterKey.generate()
    a, b = master.derive(b"one"), master.derive(b"two")
    assert len(a) == 32
    assert a != b
    assert a == master.derive(b"one")
    assert a != MasterKey.generate().derive(b"one")


def test_config_fingerprint_is_keyed_and_stable() -> None:
    """The snapshot fingerprint is deterministic under one master key and differs under another."""
    master = MasterKey.generate()
    data = b'{"SECURE_KEY": "..."}'
    first = Cipher(master).fingerprint(data)
    assert len(first) == 16
    assert first == Cipher(master).fingerprint(data)
    assert first != Cipher(master).fingerprint(data + b" ")
    assert first != Cipher(MasterKey.generate()).fingerprint(data)


def test_master_key_and_cipher_reprs_are_redacted() -> None:
    """repr()/str() of MasterKey and Cipher never show the key, in any encoding."""
    raw = secrets.token_bytes(32)
    master = MasterKey(raw)
    for text in (repr(master), str(master), repr(Cipher(master)), str(Cipher(master))):
        assert "redacted" in text
        assert master.to_base64() not in text
        assert raw.hex() not in text.lower()
        assert repr(raw) not in text


def test_ciphertexts_name_their_master_key_and_open_after_adopting_a_new_one() -> None:
    """After ``adopt`` new values carry the new key id; old ones still open; others are refused."""
    old, new = MasterKey.generate(), MasterKey.generate()
    cipher = Cipher(old)
    before = cipher.encrypt(PLAIN, AAD)
    cipher.adopt(new)
    after = cipher.encrypt(PLAIN, AAD)
    assert Cipher.key_id_of(before) == old.key_id
    assert Cipher.key_id_of(after) == new.key_id
    assert cipher.decrypt(before, AAD) == cipher.decrypt(after, AAD) == PLAIN
    assert not cipher.is_current(before)
    assert cipher.is_current(cipher.reencrypt(before, AAD))
    with pytest.raises(DecryptionError, match=f"master key {new.key_id}"):
        Cipher(old).decrypt(after, AAD)
    assert Cipher(new).decrypt(after, AAD) == PLAIN


def test_legacy_format_without_key_id_still_opens() -> None:
    """Values written before key ids existed (format 0x01) open under their master key."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    master = MasterKey.generate()
    nonce = secrets.token_bytes(12)
    blob = b"\x01" + nonce + AESGCM(master.derive(b"aes-gcm-v1")).encrypt(nonce, PLAIN, AAD)
    assert Cipher(MasterKey.generate(), [master]).decrypt(blob, AAD) == PLAIN
    with pytest.raises(DecryptionError):
        Cipher(MasterKey.generate()).decrypt(blob, AAD)


def test_check_value_opens_only_under_its_key() -> None:
    """A check value proves the key: it opens under its own key id, not under another key."""
    master = MasterKey.generate()
    check = Cipher(master).check_value()
    assert Cipher(master).opens_check_value(master.key_id, check)
    other = MasterKey.generate()
    assert not Cipher(other).opens_check_value(master.key_id, check)
    assert not Cipher(other).opens_check_value(other.key_id, check)


def test_wrapped_key_unwraps_only_with_the_wrapping_key() -> None:
    """A key wrapped under the master opens with it, to the same key id; not with another."""
    master, new = MasterKey.generate(), MasterKey.generate()
    blob = Cipher(master).wrap(new)
    assert new.to_base64() not in repr(blob)
    assert Cipher(master).unwrap(new.key_id, blob).to_base64() == new.to_base64()
    with pytest.raises(DecryptionError):
        Cipher(MasterKey.generate()).unwrap(new.key_id, blob)
