"""What the services need from storage: one ``Store`` handing out transactions of a ``Repository``.

``securekey.store`` implements it for SQLite and PostgreSQL; one contract suite tests both.
Key material and config values cross this boundary as plaintext; the store encrypts them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from securekey.crypto import Cipher
from securekey.domain.keys import KeyPair
from securekey.domain.models import (
    Addon,
    App,
    Attachment,
    AuditEvent,
    Delivery,
    KeyVersion,
    Release,
    Token,
    Webhook,
)
from securekey.domain.rotation import RotationOutcome

__all__ = [
    "IDENTITY_CHANGED",
    "NOTICES_LOST",
    "TOKEN_REVOKED",
    "ReleaseNotice",
    "Repository",
    "Store",
]


#: The ``version`` of a notice saying an app was renamed or destroyed (no release of its own).
IDENTITY_CHANGED = 0
#: The ``version`` of a notice saying the token whose id is in ``app_id`` was revoked or deleted.
TOKEN_REVOKED = -1
#: The ``version`` of a notice saying notices may have been missed: drop caches, look again.
NOTICES_LOST = -2


@dataclass(frozen=True, slots=True)
class ReleaseNotice:
    """Told to listeners after a commit: app ``app_id`` now stands at release ``version``, or
    (``IDENTITY_CHANGED``) was renamed or destroyed, so caches must drop it by id and name; or
    (``TOKEN_REVOKED``) token ``app_id`` stopped being valid. ``NOTICES_LOST`` has no id."""

    app_id: str
    version: int


class Repository(Protocol):
    """Reads and writes inside one transaction. ``lock=True`` holds the row until commit."""

    # apps
    def add_app(self, app: App) -> None: ...
    def get_app(self, ref: str, *, lock: bool = False) -> App | None: ...
    def list_apps(self) -> list[App]: ...
    def rename_app(self, app_id: str, name: str, at: datetime) -> None: ...
    def delete_app(self, app_id: str) -> None: ...
    def announce_identity_change(self, app_id: str) -> None: ...

    # releases
    def bump_release(self, app_id: str, at: datetime) -> int: ...
    def add_release(self, release: Release) -> None: ...
    def get_release(self, app_id: str, version: int) -> Release | None: ...
    def get_release_by_id(self, app_id: str, release_id: str) -> Release | None: ...
    def list_releases(
        self,
        app_id: str,
        *,
        start: int | None = None,
        end: int | None = None,
        limit: int | None = None,
        descending: bool = False,
    ) -> list[Release]: ...

    # plain config vars
    def get_plain_vars(self, app_id: str) -> dict[str, str]: ...
    def put_plain_vars(self, app_id: str, changes: Mapping[str, str | None]) -> None: ...

    # add-ons and their keys
    def add_addon(self, addon: Addon, pair: KeyPair) -> None: ...
    def get_addon(self, ref: str, *, lock: bool = False) -> Addon | None: ...
    def list_addons(self, *, app_id: str | None = None) -> list[Addon]: ...
    def get_pairs(self, addon_ids: Collection[str]) -> dict[str, KeyPair]: ...
    def list_key_versions(self, addon_id: str) -> list[KeyVersion]: ...
    def delete_addon(self, addon_id: str) -> None: ...
    def has_due(self, now: datetime) -> bool: ...
    def claim_due(self, now: datetime, exclude: Collection[str], limit: int) -> list[Addon]:
        """Up to ``limit`` due add-ons, soonest first, locked; rows another process holds are
        skipped (never waited for), so several schedulers never take the same one."""
        ...

    def lock_addons(
        self,
        *,
        after: str | None,
        limit: int,
        plan: str | None = None,
        app_id: str | None = None,
    ) -> list[Addon]:
        """Up to ``limit`` add-ons with id above ``after``, in id order, locked (waiting for
        holders); only those on ``plan`` and/or billed to or attached to ``app_id``."""
        ...

    def count_addons(
        self, *, after: str | None = None, plan: str | None = None, app_id: str | None = None
    ) -> int:
        """How many add-ons ``lock_addons`` would walk through from ``after`` on."""
        ...

    # batched rotation: many add-ons in one transaction, a savepoint around each attempt
    def savepoint(self) -> AbstractContextManager[None]: ...
    def lock_apps(
        self, app_ids: Collection[str], *, skip_locked: bool = False
    ) -> dict[str, App]: ...
    def list_attachments_of(
        self, *, addon_ids: Collection[str] = (), app_ids: Collection[str] = ()
    ) -> list[Attachment]: ...
    def get_plain_vars_of(self, app_ids: Collection[str]) -> dict[str, dict[str, str]]: ...
    def list_webhooks_of(self, app_ids: Collection[str]) -> dict[str, list[Webhook]]: ...
    def store_rotations(
        self, rotations: Sequence[tuple[Addon, RotationOutcome]], at: datetime
    ) -> None: ...
    def add_releases(self, releases: Sequence[Release]) -> None: ...
    def set_release_versions(self, versions: Mapping[str, int], at: datetime) -> None: ...
    def add_deliveries(self, deliveries: Sequence[Delivery]) -> None: ...
    def add_events(self, events: Sequence[AuditEvent]) -> None: ...

    # attachments
    def add_attachment(self, attachment: Attachment) -> None: ...
    def get_attachment(self, ref: str, *, app_id: str | None = None) -> Attachment | None: ...
    def list_attachments(
        self, *, addon_id: str | None = None, app_id: str | None = None
    ) -> list[Attachment]: ...
    def delete_attachment(self, attachment_id: str) -> None: ...

    # tokens (keyed digests; revoked operator tokens stay as tombstones that find_token returns)
    def add_token(self, token: Token) -> None: ...
    def find_token(self, token_hash: str) -> Token | None: ...
    def list_tokens(
        self,
        *,
        app_id: str | None = None,
        kind: str | None = None,
        source: str | None = None,
        lock: bool = False,
    ) -> list[Token]: ...
    def delete_token(self, token_id: str) -> None: ...
    def revoke_token(self, token_id: str, at: datetime) -> None: ...
    def touch_token(self, token_id: str, at: datetime, since: datetime) -> None: ...

    # webhooks and their deliveries (an outbox written in the release's transaction)
    def add_webhook(self, webhook: Webhook) -> None: ...
    def get_webhook(self, app_id: str, webhook_id: str) -> Webhook | None: ...
    def list_webhooks(self, app_id: str) -> list[Webhook]: ...
    def delete_webhook(self, webhook_id: str) -> None: ...
    def add_delivery(self, delivery: Delivery) -> None: ...
    def get_delivery(self, app_id: str, delivery_id: str) -> Delivery | None: ...
    def list_deliveries(self, app_id: str) -> list[Delivery]: ...
    def claim_due_delivery(
        self, now: datetime, exclude: Collection[str], exclude_webhooks: Collection[str] = ()
    ) -> Delivery | None: ...
    def update_delivery(self, delivery: Delivery) -> None: ...

    # audit log
    def add_event(self, event: AuditEvent) -> None: ...
    def list_events(
        self,
        *,
        action: str | None = None,
        target_id: str | None = None,
        limit: int | None = None,
        actor: str | None = None,
        target: str | None = None,
        target_type: str | None = None,
        app: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after_seq: int | None = None,
        before_seq: int | None = None,
        newest_first: bool = False,
    ) -> list[AuditEvent]: ...


class Store(Protocol):
    """A database: transactions, and listeners told of notices after each commit."""

    @property
    def dialect(self) -> str: ...
    @property
    def cipher(self) -> Cipher: ...
    def transaction(self, *, write: bool = True) -> AbstractContextManager[Repository]: ...
    def add_listener(self, listener: Callable[[Sequence[ReleaseNotice]], None]) -> None:
        """Call ``listener`` (from any thread) with the notices of every commit of this process
        and, once ``listen`` ran, of every other process on the same database."""
        ...

    def listen(self, timeout: float) -> bool:
        """Hear other processes' notices from now on; whether that works within ``timeout``."""
        ...

    def close(self) -> None: ...
