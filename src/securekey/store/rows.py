"""Row mappers: domain objects to column values and back, one small function per table.

Columns share the names of the dataclass fields they hold; each mapper says only what differs
(a renamed column, a converted type, or ciphertext made and opened with the ``aad`` helpers).
"""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import RowMapping

from securekey.crypto import Cipher
from securekey.domain.keys import Key
from securekey.domain.models import (
    Addon,
    App,
    Attachment,
    AuditEvent,
    Delivery,
    KeyState,
    KeyVersion,
    Release,
    Token,
    TokenKind,
    Webhook,
)
from securekey.store.aad import hook_aad, key_aad

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = [
    "addon",
    "addon_row",
    "app",
    "app_row",
    "attachment",
    "delivery",
    "event",
    "event_row",
    "key_row",
    "key_version",
    "release",
    "to_row",
    "token",
    "token_row",
    "webhook",
    "webhook_row",
]

D = TypeVar("D", bound="DataclassInstance")


@cache
def _names(cls: type[DataclassInstance]) -> tuple[str, ...]:
    """The field names of a dataclass (``fields()`` is slow to call once per row)."""
    return tuple(f.name for f in fields(cls))


def from_row(cls: type[D], row: RowMapping, **given: Any) -> D:
    """A ``cls`` from the columns named like its fields; ``given`` supplies the ones that differ."""
    values = {n: given[n] if n in given else row[n] for n in _names(cls)}
    return cls(**values)


def to_row(obj: DataclassInstance, *, skip: tuple[str, ...] = (), **given: Any) -> dict[str, Any]:
    """``obj``'s fields as column values, less ``skip``; ``given`` adds or replaces columns."""
    return {n: getattr(obj, n) for n in _names(type(obj)) if n not in skip} | given


def app(row: RowMapping) -> App:
    return from_row(App, row, release=row["release_version"])


def app_row(app: App) -> dict[str, Any]:
    return to_row(app, skip=("release",), release_version=app.release)


def addon(row: RowMapping) -> Addon:
    return from_row(Addon, row, period=timedelta(seconds=row["period_seconds"]))


def addon_row(addon: Addon) -> dict[str, Any]:
    return to_row(addon, skip=("period",), period_seconds=addon.period.total_seconds())


def attachment(row: RowMapping) -> Attachment:
    return from_row(Attachment, row)


def release(row: RowMapping) -> Release:
    return from_row(Release, row)


def token(row: RowMapping) -> Token:
    return from_row(Token, row, kind=TokenKind(row["kind"]))


def token_row(token: Token) -> dict[str, Any]:
    return to_row(token, kind=token.kind.value)


def delivery(row: RowMapping) -> Delivery:
    return from_row(Delivery, row)


def event(row: RowMapping) -> AuditEvent:
    return from_row(AuditEvent, row, details=json.loads(row["details"]), seq=int(row["seq"]))


def event_row(event: AuditEvent) -> dict[str, Any]:
    # ``seq`` is the database's to give; details are written with sorted keys (the audit
    # filter by app matches the JSON text).
    return to_row(event, skip=("seq",), details=json.dumps(event.details, sort_keys=True))


def key_version(row: RowMapping) -> KeyVersion:
    return from_row(KeyVersion, row, state=KeyState(row["state"]))


def key_row(
    cipher: Cipher, addon_id: str, version: int, state: KeyState, key: Key, at: datetime
) -> dict[str, Any]:
    """A ``key_versions`` row: the key's material encrypted, bound to its add-on and version."""
    return {
        "addon_id": addon_id,
        "version": version,
        "fingerprint": key.fingerprint,
        "state": state.value,
        "material_enc": cipher.encrypt(key.hex.encode(), key_aad(addon_id, version)),
        "created_at": at,
        "retired_at": None,
    }


def webhook(cipher: Cipher, row: RowMapping) -> Webhook:
    secret = cipher.decrypt(row["secret_enc"], hook_aad(row["id"])).decode()
    authorization = None
    if row["authorization_enc"] is not None:
        authorization = cipher.decrypt(
            row["authorization_enc"], hook_aad(row["id"], "authorization")
        ).decode()
    return from_row(
        Webhook,
        row,
        include=tuple(json.loads(row["include"])),
        secret=secret,
        authorization=authorization,
    )


def webhook_row(cipher: Cipher, webhook: Webhook) -> dict[str, Any]:
    authorization = webhook.authorization
    return to_row(
        webhook,
        skip=("secret", "authorization"),
        include=json.dumps(list(webhook.include)),
        secret_enc=cipher.encrypt(webhook.secret.encode(), hook_aad(webhook.id)),
        authorization_enc=None
        if authorization is None
        else cipher.encrypt(authorization.encode(), hook_aad(webhook.id, "authorization")),
    )
