"""The use cases: each public method is one unit of work in one transaction.

Every change to an app's config makes exactly one release on each affected app, inside the
same transaction as the change, and one audit event that names fingerprints, never keys.
Locks are always taken add-ons first, then apps in id order, so concurrent use cases do not
deadlock on PostgreSQL.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from securekey.domain import names
from securekey.domain.clock import Clock, SystemClock
from securekey.domain.keys import KeyPair
from securekey.domain.models import (
    Addon,
    App,
    Attachment,
    AuditEvent,
    KeyVersion,
    Release,
    new_id,
)
from securekey.domain.plans import Plan, parse_period, parse_plan
from securekey.domain.rotation import (
    describe_attach,
    describe_detach,
    describe_set,
    describe_unset,
    next_rotation_at,
)
from securekey.exceptions import (
    AttachedElsewhereError,
    ConflictError,
    LastAttachmentError,
    NotFoundError,
    ValidationError,
)
from securekey.services.ports import Repository, Store
from securekey.services.rotation import (
    BulkRotation,
    Fingerprinter,
    Rotated,
    RotationBatch,
    RotationFailure,
    failure_event,
    rotate_all,
    rotate_locked,
)
from securekey.services.webhooks import enqueue_release

__all__ = [
    "DEFAULT_ATTACHMENT",
    "MAX_ROTATION_BATCH",
    "ROTATION_BATCH",
    "AddonCreated",
    "BulkRotation",
    "Fingerprinter",
    "Rotated",
    "RotationBatch",
    "RotationFailure",
    "SecureKeyService",
]

log = logging.getLogger("securekey.services")

DEFAULT_ATTACHMENT = "SECURE"
_MAX_VALUE = 32 * 1024
_NAME_TRIES = 20
#: Add-ons rotated per transaction unless told otherwise (``bench/rotate_due.py`` measures it).
ROTATION_BATCH = 200
#: The most add-ons one rotation transaction may hold.
MAX_ROTATION_BATCH = 1000


@dataclass(frozen=True, slots=True)
class AddonCreated:
    """A new add-on, its first attachment on the billing app, and that app's release."""

    addon: Addon
    attachment: Attachment
    release: Release


class SecureKeyService:
    """Apps, add-ons, attachments, config vars, releases and rotations over one ``Store``."""

    def __init__(
        self,
        store: Store,
        fingerprinter: Fingerprinter,
        clock: Clock | None = None,
    ) -> None:
        self.store = store
        self._fp = fingerprinter
        self.clock: Clock = clock or SystemClock()

    # ------------------------------------------------------------------ apps

    def create_app(self, name: object, *, actor: str = "operator") -> App:
        """Create an app; its first release is v1."""
        app_name = names.check_app_name(name)
        now = self.clock.now()
        app = App(id=new_id(), name=app_name, created_at=now, updated_at=now)
        with self.store.transaction() as tx:
            if tx.get_app(app_name) is not None:
                raise ConflictError("name", f"Name {app_name} is already taken.")
            tx.add_app(app)
            release = self._release(tx, app, "Initial release", actor, now)
            self._audit(tx, actor, "app.create", "app", app.id, app.name, {}, now)
        return replace(app, release=release.version)

    def get_app(self, ref: str) -> App:
        """An app by id or name."""
        with self.store.transaction(write=False) as tx:
            return self._app(tx, ref)

    def list_apps(self) -> list[App]:
        """Every app, by name."""
        with self.store.transaction(write=False) as tx:
            return tx.list_apps()

    def rename_app(self, ref: str, new_name: object, *, actor: str = "operator") -> App:
        """Give an app a new name (its id, vars and releases stay)."""
        name = names.check_app_name(new_name)
        now = self.clock.now()
        with self.store.transaction() as tx:
            app = self._app(tx, ref, lock=True)
            if name == app.name:
                return app
            if tx.get_app(name) is not None:
                raise ConflictError("name", f"Name {name} is already taken.")
            tx.rename_app(app.id, name, now)
            tx.announce_identity_change(app.id)
            self._audit(tx, actor, "app.rename", "app", app.id, name, {"from": app.name}, now)
            return replace(app, name=name, updated_at=now)

    def destroy_app(self, ref: str, *, force: bool = False, actor: str = "operator") -> App:
        """Delete an app; refused while add-ons it bills are attached elsewhere, unless forced."""
        now = self.clock.now()
        with self.store.transaction() as tx:
            app = self._app(tx, ref)
            billed = sorted(tx.list_addons(app_id=app.id), key=lambda a: a.id)
            locked = [self._addon(tx, a.id, lock=True) for a in billed]
            elsewhere: list[tuple[str, str]] = []
            for addon in locked:
                elsewhere += self._other_attachments(tx, addon, app.id)
            if elsewhere and not force:
                raise AttachedElsewhereError(app.name, elsewhere)
            removed: list[tuple[Attachment, Addon]] = []
            for addon in locked:
                gone = self._destroy_addon(tx, addon, actor, now, app.id, release=False)
                removed += [(att, addon) for att in gone]
            # Attachments this app holds to add-ons billed elsewhere go with it.
            for att in tx.list_attachments(app_id=app.id):
                addon = self._addon(tx, att.addon_id, lock=True)
                tx.delete_attachment(att.id)
                if not tx.list_attachments(addon_id=addon.id):
                    self._destroy_addon(tx, addon, actor, now, skip_app=app.id)
            # One release per surviving app, even if it loses several add-ons' attachments.
            self._detach_releases(tx, removed, actor, now, skip_app=app.id)
            tx.delete_app(app.id)
            tx.announce_identity_change(app.id)
            self._audit(tx, actor, "app.destroy", "app", app.id, app.name, {}, now)
            return app

    # --------------------------------------------------------------- config

    def config_vars(self, app_ref: str) -> dict[str, str]:
        """The app's config: its plain vars plus ``NAME_KEY`` for every attachment."""
        with self.store.transaction(write=False) as tx:
            app = self._app(tx, app_ref)
            return self._config(tx, app.id)

    def config_snapshot(self, app_ref: str) -> tuple[App, dict[str, str]]:
        """The app (with its current release) and its config, read in one transaction."""
        with self.store.transaction(write=False) as tx:
            app = self._app(tx, app_ref)
            return app, self._config(tx, app.id)

    def set_config(
        self, app_ref: str, changes: Mapping[str, object], *, actor: str = "operator"
    ) -> Release | None:
        """Set (string) or unset (None) plain config vars; one release, none if nothing changes."""
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
        now = self.clock.now()
        with self.store.transaction() as tx:
            app = self._app(tx, app_ref, lock=True)
            owned = {a.var_name: a for a in tx.list_attachments(app_id=app.id)}
            clashes = sorted(n for n in clean if n in owned)
            if clashes:
                att = owned[clashes[0]]
                raise ConflictError(
                    clashes[0],
                    f"{clashes[0]} is set by the add-on attachment {att.name} and cannot be "
                    "changed directly; detach or rotate the add-on instead.",
                )
            current = tx.get_plain_vars(app.id)
            effective = {
                n: v
                for n, v in clean.items()
                if (v is None and n in current) or (v is not None and current.get(n) != v)
            }
            if not effective:
                return None
            tx.put_plain_vars(app.id, effective)
            set_names = sorted(n for n, v in effective.items() if v is not None)
            unset_names = sorted(n for n, v in effective.items() if v is None)
            parts = []
            if set_names:
                parts.append(describe_set(set_names))
            if unset_names:
                parts.append(describe_unset(unset_names))
            release = self._release(tx, app, " and ".join(parts), actor, now)
            if set_names:
                self._audit(
                    tx,
                    actor,
                    "config.set",
                    "app",
                    app.id,
                    app.name,
                    {"vars": ",".join(set_names)},
                    now,
                )
            if unset_names:
                self._audit(
                    tx,
                    actor,
                    "config.unset",
                    "app",
                    app.id,
                    app.name,
                    {"vars": ",".join(unset_names)},
                    now,
                )
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
        with self.store.transaction(write=False) as tx:
            app = self._app(tx, app_ref)
            return tx.list_releases(
                app.id, start=start, end=end, limit=limit, descending=descending
            )

    def release(self, app_ref: str, ref: str) -> Release:
        """One release by version (``3`` or ``v3``) or id."""
        with self.store.transaction(write=False) as tx:
            app = self._app(tx, app_ref)
            text = ref[1:] if ref[:1] in ("v", "V") else ref
            found = None
            if text.isascii() and text.isdigit() and len(text) <= 10:
                found = tx.get_release(app.id, int(text))
            else:
                found = tx.get_release_by_id(app.id, ref)
            if found is None:
                raise NotFoundError("release", ref)
            return found

    # --------------------------------------------------------------- add-ons

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
        att_name = names.check_attachment_name(
            DEFAULT_ATTACHMENT if attachment_name is None else attachment_name
        )
        given_name = None if name is None else names.check_addon_name(name)
        now = self.clock.now()
        with self.store.transaction() as tx:
            app = self._app(tx, app_ref, lock=True)
            self._check_attachment_free(tx, app, att_name)
            if given_name is not None:
                if tx.get_addon(given_name) is not None:
                    raise ConflictError("name", f"Name {given_name} is already taken.")
                addon_name = given_name
            else:
                addon_name = self._fresh_addon_name(tx)
            addon = Addon(
                id=new_id(),
                name=addon_name,
                app_id=app.id,
                plan=the_plan.name,
                period=the_period,
                created_at=now,
                updated_at=now,
                last_rotated_at=now,
                next_rotation_at=next_rotation_at(now, the_period),
            )
            pair = KeyPair.fresh()
            tx.add_addon(addon, pair)
            attachment = Attachment(new_id(), addon.id, app.id, att_name, now, now)
            tx.add_attachment(attachment)
            release = self._release(tx, app, describe_attach(att_name, addon.name), actor, now)
            self._audit(
                tx,
                actor,
                "addon.create",
                "addon",
                addon.id,
                addon.name,
                {
                    "app": app.name,
                    "plan": addon.plan_full_name,
                    "attachment": att_name,
                    "period_seconds": f"{the_period.total_seconds():g}",
                    "latest": pair.latest.fingerprint,
                    "previous": pair.previous.fingerprint,
                },
                now,
            )
        return AddonCreated(addon, attachment, release)

    def get_addon(self, ref: str) -> Addon:
        """An add-on by id or name."""
        with self.store.transaction(write=False) as tx:
            return self._addon(tx, ref)

    def resolve_addon(self, ref: str, app_ref: str | None = None) -> Addon:
        """An add-on by id or name, or by attachment name on ``app_ref`` (Heroku's resolve)."""
        with self.store.transaction(write=False) as tx:
            # An unknown app is an error even when the add-on's own name would find it.
            app = self._app(tx, app_ref) if app_ref is not None else None
            found = tx.get_addon(ref) if _plausible(ref) else None
            if found is None and app is not None and _plausible(ref):
                att = tx.get_attachment(ref, app_id=app.id)
                if att is not None:
                    found = tx.get_addon(att.addon_id)
            if found is None:
                raise NotFoundError("add_on", ref)
            return found

    def list_addons(self, app_ref: str | None = None) -> list[Addon]:
        """All add-ons, or those billed to or attached to ``app_ref``."""
        with self.store.transaction(write=False) as tx:
            if app_ref is None:
                return tx.list_addons()
            app = self._app(tx, app_ref)
            billed = {a.id: a for a in tx.list_addons(app_id=app.id)}
            for att in tx.list_attachments(app_id=app.id):
                if att.addon_id not in billed:
                    billed[att.addon_id] = self._addon(tx, att.addon_id)
            return sorted(billed.values(), key=lambda a: (a.created_at, a.name))

    def key_versions(self, addon_ref: str) -> list[KeyVersion]:
        """An add-on's key history, newest first: fingerprints, states, times."""
        with self.store.transaction(write=False) as tx:
            addon = self._addon(tx, addon_ref)
            return sorted(tx.list_key_versions(addon.id), key=lambda k: -k.version)

    def current_fingerprints(self, addon_ref: str) -> tuple[str, str]:
        """(latest, previous) fingerprints of an add-on's pair."""
        with self.store.transaction(write=False) as tx:
            addon = self._addon(tx, addon_ref)
            return tx.get_pairs([addon.id])[addon.id].fingerprints

    def destroy_addon(
        self,
        addon_ref: str,
        *,
        app_ref: str | None = None,
        force: bool = False,
        actor: str = "operator",
    ) -> Addon:
        """Deprovision an add-on. Refused while attached to other apps than its billing app."""
        now = self.clock.now()
        with self.store.transaction() as tx:
            addon = self._addon(tx, addon_ref, lock=True)
            if app_ref is not None:
                app = self._app(tx, app_ref)
                if app.id != addon.app_id:
                    raise NotFoundError("add_on", addon_ref)
            others = self._other_attachments(tx, addon, addon.app_id)
            if others and not force:
                raise AttachedElsewhereError(addon.name, others)
            self._destroy_addon(tx, addon, actor, now)
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
        att_name = names.check_attachment_name(DEFAULT_ATTACHMENT if as_ is None else as_)
        now = self.clock.now()
        with self.store.transaction() as tx:
            addon = self._addon(tx, addon_ref, lock=True)
            app = self._app(tx, app_ref, lock=True)
            self._check_attachment_free(tx, app, att_name)
            attachment = Attachment(new_id(), addon.id, app.id, att_name, now, now)
            tx.add_attachment(attachment)
            release = self._release(tx, app, describe_attach(att_name, addon.name), actor, now)
            self._audit(
                tx,
                actor,
                "addon.attach",
                "addon",
                addon.id,
                addon.name,
                {"app": app.name, "attachment": att_name},
                now,
            )
            return attachment, release

    def get_attachment(self, ref: str, *, app_ref: str | None = None) -> Attachment:
        """An attachment by id, or by name on ``app_ref``."""
        with self.store.transaction(write=False) as tx:
            app_id = self._app(tx, app_ref).id if app_ref is not None else None
            att = tx.get_attachment(ref, app_id=app_id) if _plausible(ref) else None
            if att is None:
                raise NotFoundError("add_on_attachment", ref)
            return att

    def list_attachments(
        self, *, addon_ref: str | None = None, app_ref: str | None = None
    ) -> list[Attachment]:
        """Attachments, all or filtered by add-on and/or app."""
        with self.store.transaction(write=False) as tx:
            addon_id = self._addon(tx, addon_ref).id if addon_ref is not None else None
            app_id = self._app(tx, app_ref).id if app_ref is not None else None
            return tx.list_attachments(addon_id=addon_id, app_id=app_id)

    def detach(
        self, attachment_ref: str, *, app_ref: str | None = None, actor: str = "operator"
    ) -> tuple[Attachment, Release]:
        """Remove an attachment (by id, or by name on ``app_ref``): its var goes, one release."""
        now = self.clock.now()
        with self.store.transaction() as tx:
            app_id = self._app(tx, app_ref).id if app_ref is not None else None
            att = (
                tx.get_attachment(attachment_ref, app_id=app_id)
                if _plausible(attachment_ref)
                else None
            )
            if att is None:
                raise NotFoundError("add_on_attachment", attachment_ref)
            addon = self._addon(tx, att.addon_id, lock=True)
            app = self._app(tx, att.app_id, lock=True)
            if len(tx.list_attachments(addon_id=addon.id)) <= 1:
                raise LastAttachmentError(addon.name)
            tx.delete_attachment(att.id)
            release = self._release(tx, app, describe_detach(att.name, addon.name), actor, now)
            self._audit(
                tx,
                actor,
                "addon.detach",
                "addon",
                addon.id,
                addon.name,
                {"app": app.name, "attachment": att.name},
                now,
            )
            return att, release

    # -------------------------------------------------------------- rotation

    def rotate(
        self, addon_ref: str, *, emergency: bool = False, actor: str = "operator"
    ) -> Rotated:
        """Rotate now; ``emergency`` replaces both keys (a leaked key stops working at once)."""
        now = self.clock.now()
        with self.store.transaction() as tx:
            addon = self._addon(tx, addon_ref, lock=True)
            (rotated,) = rotate_all(
                tx, [addon], self._fp, emergency=emergency, actor=actor, now=now
            )
            return rotated

    def rotate_due(
        self,
        now: datetime,
        *,
        limit: int = 1,
        exclude: Iterable[str] = (),
        actor: str = "scheduler",
    ) -> RotationBatch:
        """Claim up to ``limit`` due add-ons (skipping any another process holds) and rotate
        them in one transaction; one that fails is rolled back alone and audited as failed.

        One attached to an app another transaction holds is left due for a later batch, so
        concurrent schedulers never queue behind each other."""
        with self.store.transaction() as tx:
            addons = tx.claim_due(now, frozenset(exclude), max(1, limit))
            if not addons:
                return RotationBatch()
            return rotate_locked(
                tx, addons, self._fp, emergency=False, actor=actor, now=now, skip_busy=True
            )

    def rotate_matching(
        self,
        *,
        all_: bool = False,
        plan: object = None,
        app: object = None,
        emergency: bool = False,
        actor: str = "operator",
        batch_size: int = ROTATION_BATCH,
        limit: int | None = None,
        after: object = None,
        dry_run: bool = False,
    ) -> BulkRotation:
        """Rotate now every add-on matching one filter: ``all_``, a ``plan``, or an ``app``
        (add-ons billed to or attached to it) — the incident case.

        Add-ons go in id order, ``batch_size`` per transaction; ``limit`` stops after that
        many and ``next_after`` says where to go on (``after``). ``dry_run`` only counts.
        """
        chosen = [
            n for n, v in (("all", all_), ("plan", plan), ("app", app)) if v not in (None, False)
        ]
        if all_ not in (True, False) or len(chosen) != 1:
            raise ValidationError(
                "filter", "Give exactly one filter: all (true), a plan, or an app."
            )
        plan_name = None if plan is None else parse_plan(plan).name
        for name, value, top in (
            ("batch_size", batch_size, MAX_ROTATION_BATCH),
            ("limit", limit, None),
        ):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValidationError(name, f"{name} must be a whole number of at least 1.")
            if top is not None and value > top:
                raise ValidationError(name, f"{name} must be at most {top}.")
        if after is not None and not (isinstance(after, str) and _plausible(after)):
            raise ValidationError("after", "after must be an add-on id from a previous answer.")
        cursor: str | None = after
        with self.store.transaction(write=False) as tx:
            app_id = None
            if app is not None:
                if not isinstance(app, str):
                    raise ValidationError("app", "app must be an app name or id.")
                app_id = self._app(tx, app).id
            result = BulkRotation(tx.count_addons(after=cursor, plan=plan_name, app_id=app_id))
        if dry_run:
            return result
        done = 0
        while limit is None or done < limit:
            size = batch_size if limit is None else min(batch_size, limit - done)
            now = self.clock.now()
            with self.store.transaction() as tx:
                addons = tx.lock_addons(after=cursor, limit=size, plan=plan_name, app_id=app_id)
                batch = rotate_locked(
                    tx, addons, self._fp, emergency=emergency, actor=actor, now=now
                )
            result.rotated += len(batch.rotated)
            result.releases += sum(len(r.releases) for r in batch.rotated)
            result.failed += batch.failed
            done += len(addons)
            if len(addons) < size:
                cursor = None
                break
            cursor = addons[-1].id
        result.next_after = cursor
        return result

    def next_due(self, now: datetime) -> bool:
        """Whether any add-on is due at ``now`` (a cheap indexed read)."""
        with self.store.transaction(write=False) as tx:
            return tx.has_due(now)

    def record_failure(self, addon_id: str, reason: str, *, actor: str = "scheduler") -> None:
        """Put a failed rotation in the audit log (the add-on itself stays unchanged)."""
        now = self.clock.now()
        with self.store.transaction() as tx:
            addon = tx.get_addon(addon_id)
            name = addon.name if addon else addon_id
            tx.add_event(failure_event(RotationFailure(addon_id, name, reason), actor, now))

    # ----------------------------------------------------------------- audit

    def audit_events(
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
    ) -> list[AuditEvent]:
        """Audit events, oldest first (``newest_first`` reverses), filtered by every given field.

        The one way to read the audit log (API, CLI and dashboard). ``target`` matches a
        target's name or id; ``app`` also finds events whose details name the app (attach,
        detach); ``since`` is inclusive, ``until`` exclusive; ``after_seq``/``before_seq`` page.
        """
        with self.store.transaction(write=False) as tx:
            return tx.list_events(
                action=action,
                target_id=target_id,
                limit=limit,
                actor=actor,
                target=target,
                target_type=target_type,
                app=app,
                since=since,
                until=until,
                after_seq=after_seq,
                before_seq=before_seq,
                newest_first=newest_first,
            )

    # -------------------------------------------------------------- internal

    def _destroy_addon(
        self,
        tx: Repository,
        addon: Addon,
        actor: str,
        now: datetime,
        skip_app: str | None = None,
        *,
        release: bool = True,
    ) -> list[Attachment]:
        """Delete ``addon`` and its attachments; ``release=False`` leaves releases to the caller."""
        pair = tx.get_pairs([addon.id])[addon.id]
        attachments = sorted(tx.list_attachments(addon_id=addon.id), key=lambda a: a.app_id)
        for att in attachments:
            tx.delete_attachment(att.id)
        if release:
            self._detach_releases(tx, [(att, addon) for att in attachments], actor, now, skip_app)
        tx.delete_addon(addon.id)
        self._audit(
            tx,
            actor,
            "addon.destroy",
            "addon",
            addon.id,
            addon.name,
            {
                "detached": ",".join(a.name for a in attachments),
                "latest": pair.latest.fingerprint,
                "previous": pair.previous.fingerprint,
            },
            now,
        )
        return attachments

    def _detach_releases(
        self,
        tx: Repository,
        removed: list[tuple[Attachment, Addon]],
        actor: str,
        now: datetime,
        skip_app: str | None = None,
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
            self._release(tx, self._app(tx, app_id), text, actor, now)

    def _other_attachments(
        self, tx: Repository, addon: Addon, billing_app_id: str
    ) -> list[tuple[str, str]]:
        out = []
        for att in tx.list_attachments(addon_id=addon.id):
            if att.app_id != billing_app_id:
                out.append((self._app(tx, att.app_id).name, att.name))
        return sorted(out)

    def _check_attachment_free(self, tx: Repository, app: App, att_name: str) -> None:
        var = names.attachment_var_name(att_name)
        for att in tx.list_attachments(app_id=app.id):
            if att.name == att_name:
                raise ConflictError(
                    "attachment.name", f"{app.name} already has an attachment named {att_name}."
                )
            if att.var_name == var:  # pragma: no cover - names map one to one
                raise ConflictError("name", f"{var} is already set on {app.name}.")
        if var in tx.get_plain_vars(app.id):
            raise ConflictError(
                "attachment.name",
                f"{app.name} already has a config var {var}; unset it or attach under "
                "another name.",
            )

    def _fresh_addon_name(self, tx: Repository) -> str:
        for _ in range(_NAME_TRIES):
            candidate = names.generate_addon_name()
            if tx.get_addon(candidate) is None:
                return candidate
        raise ConflictError(None, "Could not find a free add-on name; give one with --name.")

    def _config(self, tx: Repository, app_id: str) -> dict[str, str]:
        config = tx.get_plain_vars(app_id)
        attachments = tx.list_attachments(app_id=app_id)
        pairs = tx.get_pairs({a.addon_id for a in attachments})
        for att in attachments:
            config[att.var_name] = pairs[att.addon_id].value
        return dict(sorted(config.items()))

    def _release(
        self, tx: Repository, app: App, description: str, actor: str, now: datetime
    ) -> Release:
        version = tx.bump_release(app.id, now)
        snapshot = json.dumps(self._config(tx, app.id), sort_keys=True).encode()
        release = Release(
            id=new_id(),
            app_id=app.id,
            version=version,
            description=description,
            config_fingerprint=self._fp.fingerprint(snapshot),
            actor=actor,
            created_at=now,
        )
        tx.add_release(release)
        enqueue_release(tx, app, release, now)
        return release

    def _audit(
        self,
        tx: Repository,
        actor: str,
        action: str,
        target_type: str,
        target_id: str,
        target_name: str,
        details: dict[str, str],
        now: datetime,
    ) -> None:
        tx.add_event(
            AuditEvent(new_id(), now, actor, action, target_type, target_id, target_name, details)
        )

    @staticmethod
    def _app(tx: Repository, ref: str, *, lock: bool = False) -> App:
        app = tx.get_app(ref, lock=lock) if _plausible(ref) else None
        if app is None:
            raise NotFoundError("app", ref)
        return app

    @staticmethod
    def _addon(tx: Repository, ref: str, *, lock: bool = False) -> Addon:
        addon = tx.get_addon(ref, lock=lock) if _plausible(ref) else None
        if addon is None:
            raise NotFoundError("add_on", ref)
        return addon


def _plausible(ref: str) -> bool:
    """Whether a reference could name anything: no NUL bytes, not absurdly long."""
    return isinstance(ref, str) and 0 < len(ref) <= 200 and "\x00" not in ref
