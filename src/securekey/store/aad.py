"""Associated data for AES-GCM: what each stored ciphertext is bound to (its table and row).

A ciphertext copied to another row, or another column, fails to decrypt; ``master_keys`` uses
the same functions to re-encrypt every value in place.
"""

from __future__ import annotations

__all__ = ["TOKEN_DIGEST_SECRET", "hook_aad", "key_aad", "secret_aad", "var_aad"]

#: The ``server_secrets`` row holding the key token digests are made under.
TOKEN_DIGEST_SECRET = "token-digest"  # noqa: S105 (a row name, not a secret)


def var_aad(app_id: str, name: str) -> bytes:
    """A config var's value: bound to its app and name."""
    return f"config:{app_id}:{name}".encode()


def key_aad(addon_id: str, version: int) -> bytes:
    """A key version's material: bound to its add-on and version."""
    return f"key:{addon_id}:{version}".encode()


def secret_aad(name: str) -> bytes:
    """A ``server_secrets`` value: bound to its name."""
    return b"server-secret:" + name.encode()


def hook_aad(webhook_id: str, part: str = "secret") -> bytes:
    """A webhook's signing secret (or its ``authorization`` header value): bound to the hook."""
    suffix = "" if part == "secret" else f":{part}"
    return f"webhook:{webhook_id}{suffix}".encode()
