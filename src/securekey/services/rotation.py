"""Rotation of many add-ons in one transaction, written with one bulk statement per table.

Every rotation, alone or in a batch of hundreds, goes through ``rotate_locked``: it reads what
the batch needs in a few queries, rotates in memory, then writes key versions, add-ons,
releases (one per attached app per rotation, gap-free per app), release notices, webhook
deliveries and audit events in bulk. An attempt runs inside a savepoint; when it fails, the
batch is split in halves and each half tried again, down to the one add-on that fails, which is
rolled back alone and reported while all the others rotate.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from securekey.domain.models import Addon, AuditEvent, Delivery, Release, new_id
from securekey.domain.rotation import (
    RotationOutcome,
    describe_rotation,
    next_rotation_at,
    rotate_pair,
)
from securekey.exceptions import SecureKeyError
from securekey.services.ports import Repository
from securekey.services.webhooks import release_deliveries

__all__ = [
    "BulkRotation",
    "Fingerprinter",
    "Rotated",
    "RotationBatch",
    "RotationFailure",
    "failure_event",
    "rotate_all",
    "rotate_locked",
]

log = logging.getLogger("securekey.services")


class Fingerprinter(Protocol):
    """Keyed fingerprints of config snapshots (``securekey.crypto.Cipher`` is one)."""

    def fingerprint(self, data: bytes) -> str: ...


@dataclass(frozen=True, slots=True)
class Rotated:
    """An add-on after a rotation, with the release made on each attached app."""

    addon: Addon
    fingerprints: tuple[str, str]
    releases: list[Release] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RotationFailure:
    """An add-on whose rotation failed and was rolled back: it is exactly as it was."""

    addon_id: str
    addon_name: str
    reason: str


@dataclass
class RotationBatch:
    """What one batch did: ``claimed`` add-ons, each either rotated or failed."""

    claimed: int = 0
    rotated: list[Rotated] = field(default_factory=list)
    failed: list[RotationFailure] = field(default_factory=list)


@dataclass
class BulkRotation:
    """An operator's rotation of every add-on matching a filter, in counts.

    ``matched`` counts the matching add-ons from the request's cursor on; ``next_after`` is
    the cursor to continue from when the request stopped at its limit, else None.
    """

    matched: int
    rotated: int = 0
    releases: int = 0
    failed: list[RotationFailure] = field(default_factory=list)
    next_after: str | None = None


def rotate_locked(
    tx: Repository,
    addons: Sequence[Addon],
    fp: Fingerprinter,
    *,
    emergency: bool,
    actor: str,
    now: datetime,
    skip_busy: bool = False,
) -> RotationBatch:
    """Rotate add-ons this transaction has locked; one that fails is rolled back alone.

    Each failure is recorded in the audit log as ``addon.rotate_failed`` (in this transaction).
    ``skip_busy`` (the scheduler) leaves add-ons whose apps another transaction holds for later.
    """
    batch = RotationBatch(claimed=len(addons))
    _attempt(tx, list(addons), fp, (emergency, actor, now, skip_busy), batch)
    tx.add_events([failure_event(f, actor, now) for f in batch.failed])
    for f in batch.failed:
        log.error("rotation of %s failed, left unchanged: %s", f.addon_name, f.reason)
    return batch


def _attempt(
    tx: Repository,
    addons: list[Addon],
    fp: Fingerprinter,
    how: tuple[bool, str, datetime, bool],
    batch: RotationBatch,
) -> None:
    emergency, actor, now, skip_busy = how
    try:
        with tx.savepoint():
            done = rotate_all(
                tx, addons, fp, emergency=emergency, actor=actor, now=now, skip_busy=skip_busy
            )
    except Exception as exc:  # any failure: find the add-on it belongs to by halving
        if len(addons) == 1:
            reason = exc.message if isinstance(exc, SecureKeyError) else type(exc).__name__
            batch.failed.append(RotationFailure(addons[0].id, addons[0].name, reason[:200]))
            return
        half = len(addons) // 2
        _attempt(tx, addons[:half], fp, how, batch)
        _attempt(tx, addons[half:], fp, how, batch)
        return
    batch.rotated += done


def failure_event(failure: RotationFailure, actor: str, now: datetime) -> AuditEvent:
    """The audit event of a failed rotation: the reason, never key material."""
    return AuditEvent(
        new_id(),
        now,
        actor,
        "addon.rotate_failed",
        "addon",
        failure.addon_id,
        failure.addon_name,
        {"reason": failure.reason[:200]},
    )


def rotate_all(
    tx: Repository,
    addons: Sequence[Addon],
    fp: Fingerprinter,
    *,
    emergency: bool,
    actor: str,
    now: datetime,
    skip_busy: bool = False,
) -> list[Rotated]:
    """Rotate every add-on in ``addons`` (locked by ``tx``), in order; any error fails them all.

    An app holding several of them gets one release per rotation, numbered in that order, and
    each release's fingerprint names the app's config right after its rotation. ``skip_busy``
    leaves out (unchanged, still due) add-ons attached to an app another transaction holds.
    """
    if not addons:
        return []
    ids = [a.id for a in addons]
    # Where each add-on is attached: app id -> attachment names, one release per app.
    where: dict[str, dict[str, list[str]]] = {a: {} for a in ids}
    for att in sorted(tx.list_attachments_of(addon_ids=ids), key=lambda a: (a.app_id, a.name)):
        where[att.addon_id].setdefault(att.app_id, []).append(att.name)
    wanted = sorted({app_id for apps in where.values() for app_id in apps})
    apps = tx.lock_apps(wanted, skip_locked=skip_busy)
    if skip_busy and len(apps) < len(wanted):
        # An app another transaction holds: its add-ons wait (still due) for a later batch.
        addons = [a for a in addons if apps.keys() >= where[a.id].keys()]
        ids = [a.id for a in addons]
    app_ids = sorted({app_id for a in ids for app_id in where[a]})
    pairs = tx.get_pairs(ids)
    outcomes = {a.id: rotate_pair(pairs[a.id], a.key_version, emergency=emergency) for a in addons}

    # Each app's whole config, to fingerprint its snapshot after every rotation touching it.
    on_app: dict[str, list[tuple[str, str]]] = {app_id: [] for app_id in app_ids}
    for att in tx.list_attachments_of(app_ids=app_ids):
        on_app[att.app_id].append((att.var_name, att.addon_id))
    others = {addon_id for vars_ in on_app.values() for _, addon_id in vars_} - set(ids)
    values = {addon_id: pair.value for addon_id, pair in pairs.items()}
    values.update({addon_id: pair.value for addon_id, pair in tx.get_pairs(others).items()})
    plain = tx.get_plain_vars_of(app_ids)
    hooks = tx.list_webhooks_of(app_ids)
    versions = {app_id: apps[app_id].release for app_id in app_ids}

    rotated: list[Rotated] = []
    stored: list[tuple[Addon, RotationOutcome]] = []
    releases: list[Release] = []
    deliveries: list[Delivery] = []
    events: list[AuditEvent] = []
    for addon in addons:
        pair, outcome = pairs[addon.id], outcomes[addon.id]
        values[addon.id] = outcome.pair.value
        updated = replace(
            addon,
            key_version=outcome.latest_version,
            last_rotated_at=now,
            next_rotation_at=next_rotation_at(now, addon.period),
            updated_at=now,
        )
        stored.append((updated, outcome))
        made = []
        for app_id, att_names in where[addon.id].items():
            versions[app_id] += 1
            config = dict(plain[app_id])
            config.update({var: values[held] for var, held in on_app[app_id]})
            snapshot = json.dumps(config, sort_keys=True).encode()
            release = Release(
                id=new_id(),
                app_id=app_id,
                version=versions[app_id],
                description=describe_rotation(
                    ", ".join(att_names), addon.name, emergency=emergency
                ),
                config_fingerprint=fp.fingerprint(snapshot),
                actor=actor,
                created_at=now,
            )
            made.append(release)
            app = replace(apps[app_id], release=release.version, updated_at=now)
            deliveries += release_deliveries(app, hooks[app_id], release, now)
        releases += made
        events.append(
            AuditEvent(
                new_id(),
                now,
                actor,
                "addon.rotate_emergency" if emergency else "addon.rotate",
                "addon",
                addon.id,
                addon.name,
                {
                    "retired": pair.previous.fingerprint
                    if not emergency
                    else f"{pair.latest.fingerprint},{pair.previous.fingerprint}",
                    "latest": outcome.pair.latest.fingerprint,
                    "previous": outcome.pair.previous.fingerprint,
                    "apps": str(len(made)),
                },
            )
        )
        rotated.append(Rotated(updated, outcome.pair.fingerprints, made))

    tx.store_rotations(stored, now)
    tx.set_release_versions({a: v for a, v in versions.items() if v != apps[a].release}, now)
    tx.add_releases(releases)
    tx.add_deliveries(deliveries)
    tx.add_events(events)
    for done in rotated:
        log.info(
            "rotated %s%s: latest %s, previous %s, %d app(s)",
            done.addon.name,
            " (emergency)" if emergency else "",
            done.fingerprints[0],
            done.fingerprints[1],
            len(done.releases),
        )
    return rotated
