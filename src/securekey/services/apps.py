"""Use cases of apps, their config vars and releases: create, rename, destroy, set and read.

Every change to an app's config makes exactly one release on it, in the same transaction as
the change, and one audit event that names fingerprints and var names, never values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from securekey.domain import names
from securekey.domain.models import Addon, App, Attachment, Release, new_id
from securekey.domain.rotation import describe_set, describe_unset
from securekey.exceptions import (
    AttachedElsewhereError,
    ConflictError,
    NotFoundError,
    ValidationError,
)
from securekey.services.addons import destroy_addon, detach_releases, other_attachments
from securekey.services.unit_of_work import UnitOfWork, UseCases

__all__ = ["AppUseCases"]

_MAX_VALUE = 32 * 1024


class AppUseCases(UseCases):
    """Apps, config vars and releases."""

    def create_app(self, name: object, *, actor: str = "operator") -> App:
        """Create an app; its first release is v1."""
        app_name = names.check_app_name(name)
        with self._uow(actor=actor) as uow:
            app = App(id=new_id(), name=app_name, created_at=uow.now, updated_at=uow.now)
            if uow.tx.get_app(app_name) is not None:
                raise ConflictError("name", f"Name {app_name} is already taken.")
            uow.tx.add_app(app)
            release = uow.new_release(app, "Initial release")
            uow.audit("app.create", app)
        return replace(app, release=release.version)

    def get_app(self, ref: str) -> App:
        """An app by id or name."""
        with self._uow(write=False) as uow:
            return uow.app(ref)

    def list_apps(self) -> list[App]:
        """Every app, by name."""
        with self._uow(write=False) as uow:
            return uow.tx.list_apps()

    def rename_app(self, ref: str, new_name: object, *, actor: str = "operator") -> App:
        """Give an app a new name (its id, vars and releases stay)."""
        name = names.check_app_name(new_name)
        with self._uow(actor=actor) as uow:
            app = uow.app(ref, lock=True)
            if name == app.name:
                return app
            if uow.tx.get_app(name) is not None:
                raise ConflictError("name", f"Name {name} is already taken.")
            uow.tx.rename_app(app.id, name, uow.now)
            uow.tx.announce_identity_change(app.id)
            renamed = replace(app, name=name, updated_at=uow.now)
            uow.audit("app.rename", renamed, {"from": app.name})
            return renamed

    def destroy_app(self, ref: str, *, force: bool = False, actor: str = "operator") -> App:
        """Delete an app; refused while add-ons it bills are attached elsewhere, unless forced."""
        with self._uow(actor=actor) as uow:
            app = uow.app(ref)
            billed = sorted(uow.tx.list_addons(app_id=app.id), key=lambda a: a.id)
            locked = [uow.addon(a.id, lock=True) for a in billed]
            elsewhere: list[tuple[str, str]] = []
            for addon in locked:
                elsewhere += other_attachments(uow, addon, app.id)
            if elsewhere and not force:
                raise AttachedElsewhereError(app.name, elsewhere)
            removed: list[tuple[Attachment, Addon]] = []
            for addon in locked:
                gone = destroy_addon(uow, addon, app.id, release=False)
                removed += [(att, addon) for att in gone]
            # Attachments this app holds to add-ons billed elsewhere go with it.
            for att in uow.tx.list_attachments(app_id=app.id):
                addon = uow.addon(att.addon_id, lock=True)
                uow.tx.delete_attachment(att.id)
                if not uow.tx.list_attachments(addon_id=addon.id):
                    destroy_addon(uow, addon, skip_app=app.id)
            # One release per surviving app, even if it loses several add-ons' attachments.
            detach_releases(uow, removed, skip_app=app.id)
            uow.tx.delete_app(app.id)
            uow.tx.announce_identity_change(app.id)
            uow.audit("app.destroy", app)
            return app

    # --------------------------------------------------------------- config

    def config_vars(self, app_ref: str) -> dict[str, str]:
        """The app's config: its plain vars plus ``NAME_KEY`` for every attachment."""
        return self.config_snapshot(app_ref)[1]

    def config_snapshot(self, app_ref: str) -> tuple[App, dict[str, str]]:
        """The app (with its current release) and its config, read in one transaction."""
        with self._uow(write=False) as uow:
            app = uow.app(app_ref)
            return app, uow.config(app.id)

    def set_config(
        self, app_ref: str, changes: Mapping[str, object], *, actor: str = "operator"
    ) -> Release | None:
        """Set (string) or unset (None) plain config vars; one release, none if nothing changes."""
        clean = _clean_changes(changes)
        with self._uow(actor=actor) as uow:
            app = uow.app(app_ref, lock=True)
            _refuse_attachment_vars(uow, app, clean)
            current = uow.tx.get_plain_vars(app.id)
            effective = {
                n: v
                for n, v in clean.items()
                if (v is None and n in current) or (v is not None and current.get(n) != v)
            }
            if not effective:
                return None
            uow.tx.put_plain_vars(app.id, effective)
            set_names = sorted(n for n, v in effective.items() if v is not None)
            unset_names = sorted(n for n, v in effective.items() if v is None)
            parts = []
            if set_names:
                parts.append(describe_set(set_names))
            if unset_names:
                parts.append(describe_unset(unset_names))
            release = uow.new_release(app, " and ".join(parts))
            if set_names:
                uow.audit("config.set", app, {"vars": ",".join(set_names)})
            if unset_names:
                uow.audit("config.unset", app, {"vars": ",".join(unset_names)})
            return release

    # -------------------------------------------------------------- releases

    def releases(
        self,
        app_ref: str,
        *,
        start: int | None = None,
        end: int | None = None,
        limit: int | None = None,
        descending: bool = False,
    ) -> list[Release]:
        """An app's releases, oldest first unless ``descending``; ``start``/``end`` are versions."""
        with self._uow(write=False) as uow:
            app = uow.app(app_ref)
            return uow.tx.list_releases(
                app.id, start=start, end=end, limit=limit, descending=descending
            )

    def release(self, app_ref: str, ref: str) -> Release:
        """One release by version (``3`` or ``v3``) or id."""
        with self._uow(write=False) as uow:
            app = uow.app(app_ref)
            text = ref[1:] if ref[:1] in ("v", "V") else ref
            if text.isascii() and text.isdigit() and len(text) <= 10:
                found = uow.tx.get_release(app.id, int(text))
            else:
                found = uow.tx.get_release_by_id(app.id, ref)
            if found is None:
                raise NotFoundError("release", ref)
            return found


def _clean_changes(changes: Mapping[str, object]) -> dict[str, str | None]:
    """Checked names and values: a string (numbers become one) to set, None to unset."""
    clean: dict[str, str | None] = {}
    for raw_name, value in changes.items():
        name = names.check_config_var_name(raw_name)
        if value is not None and not isinstance(value, str):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValidationError(name, f"The value of {name} must be a string or null.")
            value = str(value)
        if isinstance(value, str):
            if "\x00" in value:
                raise ValidationError(name, f"The value of {name} must not contain NUL bytes.")
            if len(value) > _MAX_VALUE:
                raise ValidationError(name, f"The value of {name} is over 32 KiB.")
        clean[name] = value
    if not clean:
        raise ValidationError("config_vars", "Give at least one config var to set or unset.")
    return clean


def _refuse_attachment_vars(uow: UnitOfWork, app: App, clean: Mapping[str, object]) -> None:
    """A var an attachment sets changes only by detaching or rotating its add-on."""
    owned = {a.var_name: a for a in uow.tx.list_attachments(app_id=app.id)}
    clashes = sorted(n for n in clean if n in owned)
    if clashes:
        att = owned[clashes[0]]
        raise ConflictError(
            clashes[0],
            f"{clashes[0]} is set by the add-on attachment {att.name} and cannot be "
            "changed directly; detach or rotate the add-on instead.",
        )
