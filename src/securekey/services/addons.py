"""Use cases of add-ons, their attachments and key history: create, attach, detach, destroy.

Locks are always taken add-ons first, then apps in id order, so concurrent use cases do not
deadlock on PostgreSQL. Every attach or detach makes one release on the app it changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from securekey.domain import names
from securekey.domain.keys import KeyPair
from securekey.domain.models import Addon, App, Attachment, KeyVersion, Release, new_id
from securekey.domain.plans import Plan, parse_period, parse_plan
from securekey.domain.rotation import describe_attach, describe_detach, next_rotation_at
from securekey.exceptions import (
    AttachedElsewhereError,
    ConflictError,
    LastAttachmentError,
    NotFoundError,
)
from securekey.services.unit_of_work import UnitOfWork, UseCases, plausible

__all__ = [
    "DEFAULT_ATTACHMENT",
    "AddonCreated",
    "AddonUseCases",
    "destroy_addon",
    "detach_releases",
    "other_attachments",
]

DEFAULT_ATTACHMENT = "SECURE"
_NAME_TRIES = 20


@dataclass(frozen=True, slots=True)
class AddonCreated:
    """A new add-on, its first attachment on the billing app, and that app's release."""

    addon: Addon
    attachment: Attachment
    release: Release


class AddonUseCases(UseCases):
    """Add-ons, attachments and key history."""

    def create_addon(
        self,
        app_ref: str,
        plan: object,
        *,
        name: object = None,
        attachment_name: object = None,
        period: object = None,
        actor: str = "operator",
    ) -> AddonCreated:
        """Provision an add-on billed to ``app_ref`` with a fresh pair, attached as ``SECURE``."""
        the_plan: Plan = parse_plan(plan)
        the_period: timedelta = the_plan.period if period is None else parse_period(period)
        att_name = _attachment_name(attachment_name)
        given_name = None if name is None else names.check_addon_name(name)
        with self._uow(actor=actor) as uow:
            app = uow.app(app_ref, lock=True)
            _check_attachment_free(uow, app, att_name)
            if given_name is not None and uow.tx.get_addon(given_name) is not None:
                raise ConflictError("name", f"Name {given_name} is already taken.")
            addon = Addon(
                id=new_id(),
                name=given_name or _fresh_addon_name(uow),
                app_id=app.id,
                plan=the_plan.name,
                period=the_period,
                created_at=uow.now,
                updated_at=uow.now,
                last_rotated_at=uow.now,
                next_rotation_at=next_rotation_at(uow.now, the_period),
            )
            pair = KeyPair.fresh()
            uow.tx.add_addon(addon, pair)
            attachment, release = _attach(uow, addon, app, att_name)
            uow.audit(
                "addon.create",
                addon,
                {
                    "app": app.name,
                    "plan": addon.plan_full_name,
                    "attachment": att_name,
                    "period_seconds": f"{the_period.total_seconds():g}",
                    "latest": pair.latest.fingerprint,
                    "previous": pair.previous.fingerprint,
                },
            )
        return AddonCreated(addon, attachment, release)

    def get_addon(self, ref: str) -> Addon:
        """An add-on by id or name."""
        with self._uow(write=False) as uow:
            return uow.addon(ref)

    def resolve_addon(self, ref: str, app_ref: str | None = None) -> Addon:
        """An add-on by id or name, or by attachment name on ``app_ref`` (Heroku's resolve)."""
        with self._uow(write=False) as uow:
            # An unknown app is an error even when the add-on's own name would find it.
            app = uow.app(app_ref) if app_ref is not None else None
            found = uow.tx.get_addon(ref) if plausible(ref) else None
            if found is None and app is not None and plausible(ref):
                att = uow.tx.get_attachment(ref, app_id=app.id)
                if att is not None:
                    found = uow.tx.get_addon(att.addon_id)
            if found is None:
                raise NotFoundError("add_on", ref)
            return found

    def list_addons(self, app_ref: str | None = None) -> list[Addon]:
        """All add-ons, or those billed to or attached to ``app_ref``."""
        with self._uow(write=False) as uow:
            if app_ref is None:
                return uow.tx.list_addons()
            app = uow.app(app_ref)
            billed = {a.id: a for a in uow.tx.list_addons(app_id=app.id)}
            for att in uow.tx.list_attachments(app_id=app.id):
                if att.addon_id not in billed:
                    billed[att.addon_id] = uow.addon(att.addon_id)
            return sorted(billed.values(), key=lambda a: (a.created_at, a.name))

    def key_versions(self, addon_ref: str) -> list[KeyVersion]:
        """An add-on's key history, newest first: fingerprints, states, times."""
        with self._uow(write=False) as uow:
            addon = uow.addon(addon_ref)
            return sorted(uow.tx.list_key_versions(addon.id), key=lambda k: -k.version)

    def current_fingerprints(self, addon_ref: str) -> tuple[str, str]:
        """(latest, previous) fingerprints of an add-on's pair."""
        with self._uow(write=False) as uow:
            addon = uow.addon(addon_ref)
            return uow.tx.get_pairs([addon.id])[addon.id].fingerprints

    def destroy_addon(
        self,
        addon_ref: str,
        *,
        app_ref: str | None = None,
        force: bool = False,
        actor: str = "operator",
    ) -> Addon:
        """Deprovision an add-on. Refused while attached to other apps than its billing app."""
        with self._uow(actor=actor) as uow:
            addon = uow.addon(addon_ref, lock=True)
            if app_ref is not None and uow.app(app_ref).id != addon.app_id:
                raise NotFoundError("add_on", addon_ref)
            others = other_attachments(uow, addon, addon.app_id)
            if others and not force:
                raise AttachedElsewhereError(addon.name, others)
            destroy_addon(uow, addon)
            return addon

    # ----------------------------------------------------------- attachments

    def attach(
        self,
        addon_ref: str,
        app_ref: str,
        *,
        as_: object = None,
        actor: str = "operator",
    ) -> tuple[Attachment, Release]:
        """Attach an add-on to an app under ``as_`` (default ``SECURE``): one release there."""
        att_name = _attachment_name(as_)
        with self._uow(actor=actor) as uow:
            addon = uow.addon(addon_ref, lock=True)
            app = uow.app(app_ref, lock=True)
            _check_attachment_free(uow, app, att_name)
            attachment, release = _attach(uow, addon, app, att_name)
            uow.audit("addon.attach", addon, {"app": app.name, "attachment": att_name})
            return attachment, release

    def get_attachment(self, ref: str, *, app_ref: str | None = None) -> Attachment:
        """An attachment by id, or by name on ``app_ref``."""
        with self._uow(write=False) as uow:
            return _attachment(uow, ref, app_ref)

    def list_attachments(
        self, *, addon_ref: str | None = None, app_ref: str | None = None
    ) -> list[Attachment]:
        """Attachments, all or filtered by add-on and/or app."""
        with self._uow(write=False) as uow:
            addon_id = uow.addon(addon_ref).id if addon_ref is not None else None
            app_id = uow.app(app_ref).id if app_ref is not None else None
            return uow.tx.list_attachments(addon_id=addon_id, app_id=app_id)

    def detach(
        self, attachment_ref: str, *, app_ref: str | None = None, actor: str = "operator"
    ) -> tuple[Attachment, Release]:
        """Remove an attachment (by id, or by name on ``app_ref``): its var goes, one release."""
        with self._uow(actor=actor) as uow:
            att = _attachment(uow, attachment_ref, app_ref)
            addon = uow.addon(att.addon_id, lock=True)
            app = uow.app(att.app_id, lock=True)
            if len(uow.tx.list_attachments(addon_id=addon.id)) <= 1:
                raise LastAttachmentError(addon.name)
            uow.tx.delete_attachment(att.id)
            release = uow.new_release(app, describe_detach(att.name, addon.name))
            uow.audit("addon.detach", addon, {"app": app.name, "attachment": att.name})
            return att, release


def _attachment_name(given: object) -> str:
    return names.check_attachment_name(DEFAULT_ATTACHMENT if given is None else given)


def _attachment(uow: UnitOfWork, ref: str, app_ref: str | None) -> Attachment:
    """An attachment by id, or by name on ``app_ref``, or ``NotFoundError``."""
    app_id = uow.app(app_ref).id if app_ref is not None else None
    att = uow.tx.get_attachment(ref, app_id=app_id) if plausible(ref) else None
    if att is None:
        raise NotFoundError("add_on_attachment", ref)
    return att


def _attach(uow: UnitOfWork, addon: Addon, app: App, att_name: str) -> tuple[Attachment, Release]:
    """Attach ``addon`` to ``app`` (both locked, the name checked free) as ``att_name``: the
    attachment and the one release it makes; creating and attaching share it."""
    attachment = Attachment(new_id(), addon.id, app.id, att_name, uow.now, uow.now)
    uow.tx.add_attachment(attachment)
    release = uow.new_release(app, describe_attach(att_name, addon.name))
    return attachment, release


def destroy_addon(
    uow: UnitOfWork, addon: Addon, skip_app: str | None = None, *, release: bool = True
) -> list[Attachment]:
    """Delete ``addon`` and its attachments; ``release=False`` leaves releases to the caller."""
    pair = uow.tx.get_pairs([addon.id])[addon.id]
    attachments = sorted(uow.tx.list_attachments(addon_id=addon.id), key=lambda a: a.app_id)
    for att in attachments:
        uow.tx.delete_attachment(att.id)
    if release:
        detach_releases(uow, [(att, addon) for att in attachments], skip_app)
    uow.tx.delete_addon(addon.id)
    uow.audit(
        "addon.destroy",
        addon,
        {
            "detached": ",".join(a.name for a in attachments),
            "latest": pair.latest.fingerprint,
            "previous": pair.previous.fingerprint,
        },
    )
    return attachments


def detach_releases(
    uow: UnitOfWork, removed: list[tuple[Attachment, Addon]], skip_app: str | None = None
) -> None:
    """One release on each app that lost attachments, however many (apps in id order)."""
    by_app: dict[str, dict[str, list[str]]] = {}
    for att, addon in removed:
        if att.app_id != skip_app:
            by_app.setdefault(att.app_id, {}).setdefault(addon.name, []).append(att.name)
    for app_id in sorted(by_app):
        text = " and ".join(
            describe_detach(", ".join(sorted(att_names)), addon_name)
            for addon_name, att_names in sorted(by_app[app_id].items())
        )
        uow.new_release(uow.app(app_id), text)


def other_attachments(uow: UnitOfWork, addon: Addon, billing_app_id: str) -> list[tuple[str, str]]:
    """(app name, attachment name) of the add-on's attachments outside its billing app."""
    out = []
    for att in uow.tx.list_attachments(addon_id=addon.id):
        if att.app_id != billing_app_id:
            out.append((uow.app(att.app_id).name, att.name))
    return sorted(out)


def _check_attachment_free(uow: UnitOfWork, app: App, att_name: str) -> None:
    var = names.attachment_var_name(att_name)
    for att in uow.tx.list_attachments(app_id=app.id):
        if att.name == att_name:
            raise ConflictError(
                "attachment.name", f"{app.name} already has an attachment named {att_name}."
            )
        if att.var_name == var:  # pragma: no cover - names map one to one
            raise ConflictError("name", f"{var} is already set on {app.name}.")
    if var in uow.tx.get_plain_vars(app.id):
        raise ConflictError(
            "attachment.name",
            f"{app.name} already has a config var {var}; unset it or attach under another name.",
        )


def _fresh_addon_name(uow: UnitOfWork) -> str:
    for _ in range(_NAME_TRIES):
        candidate = names.generate_addon_name()
        if uow.tx.get_addon(candidate) is None:
            return candidate
    raise ConflictError(None, "Could not find a free add-on name; give one with --name.")
