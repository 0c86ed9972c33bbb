"""Add-ons, their key versions (material encrypted, bound to add-on and version) and attachments."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import sqlalchemy as sa

from securekey.domain.keys import Key, KeyPair
from securekey.domain.models import Addon, Attachment, KeyState, KeyVersion
from securekey.exceptions import DecryptionError
from securekey.store import rows
from securekey.store import tables as t
from securekey.store.aad import key_aad
from securekey.store.repository.base import RepositoryBase, looks_like_uuid, where_given

__all__ = ["AddonsPart"]

#: The two states a key is in service in (material stored, handed to consumers).
_IN_SERVICE = (KeyState.LATEST.value, KeyState.PREVIOUS.value)


class AddonsPart(RepositoryBase):
    """Add-ons with their LATEST/PREVIOUS pair and key history; attachments to apps."""

    def add_addon(self, addon: Addon, pair: KeyPair) -> None:
        self.conn.execute(t.addons.insert().values(**rows.addon_row(addon)))
        for version, state, key in (
            (addon.key_version - 1, KeyState.PREVIOUS, pair.previous),
            (addon.key_version, KeyState.LATEST, pair.latest),
        ):
            row = rows.key_row(self.cipher, addon.id, version, state, key, addon.created_at)
            self.conn.execute(t.key_versions.insert().values(**row))

    def get_addon(self, ref: str, *, lock: bool = False) -> Addon | None:
        return self._by_ref(t.addons, ref, lock, rows.addon)

    def list_addons(self, *, app_id: str | None = None) -> list[Addon]:
        query = sa.select(t.addons).order_by(t.addons.c.created_at, t.addons.c.name)
        return self._all(where_given(query, (t.addons.c.app_id, app_id)), rows.addon)

    def get_pairs(self, addon_ids: Collection[str]) -> dict[str, KeyPair]:
        if not addon_ids:
            return {}
        kv = t.key_versions.c
        query = sa.select(kv.addon_id, kv.version, kv.state, kv.material_enc).where(
            self._among(kv.addon_id, addon_ids), kv.state.in_(_IN_SERVICE)
        )
        found: dict[str, dict[str, Key]] = {}
        for addon_id, version, state, blob in self.conn.execute(query):
            if blob is None:
                raise DecryptionError("A key in service has no stored material.")
            material = self.cipher.decrypt(blob, key_aad(addon_id, version)).decode()
            found.setdefault(addon_id, {})[state] = Key(material)
        pairs = {}
        for addon_id in addon_ids:
            slots = found.get(addon_id, {})
            if set(slots) != set(_IN_SERVICE):
                raise DecryptionError(
                    "An add-on does not have exactly one LATEST and PREVIOUS key."
                )
            pairs[addon_id] = KeyPair(slots[KeyState.LATEST.value], slots[KeyState.PREVIOUS.value])
        return pairs

    def list_key_versions(self, addon_id: str) -> list[KeyVersion]:
        kv = t.key_versions.c
        # Fingerprints, states and times only: the material stays in the database.
        query = (
            sa.select(
                kv.addon_id, kv.version, kv.fingerprint, kv.state, kv.created_at, kv.retired_at
            )
            .where(kv.addon_id == addon_id)
            .order_by(kv.version)
        )
        return self._all(query, rows.key_version)

    def delete_addon(self, addon_id: str) -> None:
        self.conn.execute(t.key_versions.delete().where(t.key_versions.c.addon_id == addon_id))
        self.conn.execute(t.attachments.delete().where(t.attachments.c.addon_id == addon_id))
        self.conn.execute(t.addons.delete().where(t.addons.c.id == addon_id))

    # ---------------------------------------------------------- attachments

    def add_attachment(self, attachment: Attachment) -> None:
        self.conn.execute(t.attachments.insert().values(**rows.to_row(attachment)))

    def get_attachment(self, ref: str, *, app_id: str | None = None) -> Attachment | None:
        c = t.attachments.c
        query = sa.select(t.attachments)
        if looks_like_uuid(ref):
            query = query.where(c.id == ref)
            if app_id is not None:
                query = query.where(c.app_id == app_id)
        elif app_id is not None:
            query = query.where(c.app_id == app_id, c.name == ref)
        else:
            return None
        return self._one(query, rows.attachment)

    def list_attachments(
        self, *, addon_id: str | None = None, app_id: str | None = None
    ) -> list[Attachment]:
        c = t.attachments.c
        query = sa.select(t.attachments).order_by(c.created_at, c.name)
        query = where_given(query, (c.addon_id, addon_id), (c.app_id, app_id))
        return self._all(query, rows.attachment)

    def list_attachments_of(
        self, *, addon_ids: Collection[str] = (), app_ids: Collection[str] = ()
    ) -> list[Attachment]:
        where = self._attachments_of(addon_ids, app_ids)
        if where is None:
            return []
        c = t.attachments.c
        query = sa.select(t.attachments).where(where).order_by(c.created_at, c.name)
        return self._all(query, rows.attachment)

    def _attachments_of(self, addon_ids: Collection[str], app_ids: Collection[str]) -> Any:
        """Attachments of any of ``addon_ids`` or to any of ``app_ids``; None if both empty."""
        c = t.attachments.c
        clauses = []
        if addon_ids:
            clauses.append(self._among(c.addon_id, addon_ids))
        if app_ids:
            clauses.append(self._among(c.app_id, app_ids))
        return sa.or_(*clauses) if clauses else None

    def attachment_links(
        self, *, addon_ids: Collection[str] = (), app_ids: Collection[str] = ()
    ) -> list[tuple[str, str, str]]:
        where = self._attachments_of(addon_ids, app_ids)
        if where is None:
            return []
        c = t.attachments.c
        query = sa.select(c.addon_id, c.app_id, c.name).where(where).order_by(c.app_id, c.name)
        return [
            (addon_id, app_id, name) for addon_id, app_id, name in self.conn.execute(query).all()
        ]

    def delete_attachment(self, attachment_id: str) -> None:
        self.conn.execute(t.attachments.delete().where(t.attachments.c.id == attachment_id))
