"""Joined reads for answers that show several records together: each view is read in one
transaction, so an add-on, its billing app, its var names and fingerprints agree.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from securekey.domain.models import Addon, App, Attachment
from securekey.exceptions import NotFoundError
from securekey.services.ports import Store

__all__ = ["AddonView", "AttachmentView", "ViewService"]


@dataclass(frozen=True, slots=True)
class AddonView:
    """An add-on with its billing app, the var names it sets there and maybe its fingerprints."""

    addon: Addon
    billing: App
    var_names: list[str]
    fingerprints: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class AttachmentView:
    """An attachment with its add-on, the add-on's billing app and the app it is attached to."""

    attachment: Attachment
    addon: Addon
    billing: App
    app: App


class ViewService:
    """Reads views of add-ons and attachments, each list in one read-only transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def addon_views(
        self, addons: Sequence[Addon], *, with_fingerprints: bool = False
    ) -> list[AddonView]:
        """``addons`` with their billing apps and var names there; an add-on whose billing app
        is gone is left out. Fingerprints of an add-on destroyed meanwhile are a 404."""
        ids = [a.id for a in addons]
        with self.store.transaction(write=False) as tx:
            apps = _by_id({a.app_id for a in addons}, tx.get_app, tx.list_apps)
            attachments = tx.list_attachments_of(addon_ids=ids) if ids else []
            pairs = {}
            if with_fingerprints:
                for addon in addons:
                    if tx.get_addon(addon.id) is None:
                        raise NotFoundError("add_on", addon.id)
                pairs = tx.get_pairs(ids)
        out = []
        for addon in addons:
            billing = apps.get(addon.app_id)
            if billing is None:
                continue
            names = [
                a.var_name for a in attachments if a.addon_id == addon.id and a.app_id == billing.id
            ]
            fps = pairs[addon.id].fingerprints if addon.id in pairs else None
            out.append(AddonView(addon, billing, names, fps))
        return out

    def attachment_views(self, attachments: Sequence[Attachment]) -> list[AttachmentView]:
        """``attachments`` with their add-ons and apps; one whose add-on or app is gone is left
        out."""
        with self.store.transaction(write=False) as tx:
            addons = _by_id({t.addon_id for t in attachments}, tx.get_addon, tx.list_addons)
            wanted = {t.app_id for t in attachments} | {a.app_id for a in addons.values()}
            apps = _by_id(wanted, tx.get_app, tx.list_apps)
        out = []
        for att in attachments:
            addon = addons.get(att.addon_id)
            if addon is None or att.app_id not in apps or addon.app_id not in apps:
                continue
            out.append(AttachmentView(att, addon, apps[addon.app_id], apps[att.app_id]))
        return out


#: Up to this many records are read one by one; more are read in one pass over the table.
_FEW = 8


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


_T = TypeVar("_T", bound=_Identified)


def _by_id(
    ids: Collection[str], one: Callable[[str], _T | None], every: Callable[[], list[_T]]
) -> dict[str, _T]:
    """The records with these ids that still exist, by id."""
    if len(ids) > _FEW:
        return {r.id: r for r in every() if r.id in ids}
    found = (one(i) for i in ids)
    return {r.id: r for r in found if r is not None}
