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

from securekey.domain.keys import KeyPair
from securekey.domain.models import Addon, App, AuditEvent, Delivery, Release, Webhook, new_id
from securekey.domain.names import attachment_var_name
from securekey.domain.rotation import (
    RotationOutcome,
    describe_rotation,
    next_rotation_at,
    rotate_pair,
)
from securekey.exceptions import SecureKeyError
from securekey.services.outbox import release_deliveries
from securekey.services.ports import Repository
from securekey.services.unit_of_work import Fingerprinter

__all__ = [
    "BulkRotation",
    "Fingerprinter",
    "Rotated",
    "RotationBatch",
    "RotationFailure",
    "RotationRun",
    "failure_event",
    "rotate_all",
    "rotate_locked",
]

log = logging.getLogger("securekey.services")


@dataclass(frozen=True, slots=True)
class RotationRun:
    """How a batch rotates: who asks, at which instant, emergency or not.

    ``skip_busy`` (the scheduler) leaves add-ons whose apps another transaction holds for later.
    """

    fp: Fingerprinter
    actor: str
    now: datetime
    emergency: bool = False
    skip_busy: bool = False


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


def rotate_locked(tx: Repository, addons: Sequence[Addon], run: RotationRun) -> RotationBatch:
    """Rotate add-ons this transaction has locked; one that fails is rolled back alone.

    Each failure is recorded in the audit log as ``addon.rotate_failed`` (in this transaction).
    """
    batch = RotationBatch(claimed=len(addons))
    _attempt(tx, list(addons), run, batch)
    tx.add_events([failure_event(f, run.actor, run.now) for f in batch.failed])
    for f in batch.failed:
        log.error("rotation of %s failed, left unchanged: %s", f.addon_name, f.reason)
    return batch


def _attempt(tx: Repository, addons: list[Addon], run: RotationRun, batch: RotationBatch) -> None:
    try:
        with tx.savepoint():
            done = rotate_all(tx, addons, run)
    except Exception as exc:  # any failure: find the add-on it belongs to by halving
        if len(addons) == 1:
            reason = exc.message if isinstance(exc, SecureKeyError) else type(exc).__name__
            batch.failed.append(RotationFailure(addons[0].id, addons[0].name, reason[:200]))
            return
        half = len(addons) // 2
        _attempt(tx, addons[:half], run, batch)
        _attempt(tx, addons[half:], run, batch)
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


@dataclass
class _Batch:
    """What a batch read before rotating: where each add-on is attached, the apps (locked),
    the pairs and their new outcomes, and each app's whole config to fingerprint snapshots."""

    addons: list[Addon]
    #: add-on id -> app id -> attachment names there (one release per app).
    where: dict[str, dict[str, list[str]]]
    apps: dict[str, App]
    pairs: dict[str, KeyPair]
    outcomes: dict[str, RotationOutcome]
    #: app id -> (config var, add-on id) of every attachment on it.
    on_app: dict[str, list[tuple[str, str]]]
    #: add-on id -> its pair's config value (updated as the batch rotates).
    values: dict[str, str]
    plain: dict[str, dict[str, str]]
    hooks: dict[str, list[Webhook]]
    #: app id -> its release version (counted up as the batch makes releases).
    versions: dict[str, int]


@dataclass
class _Writes:
    """What a batch writes, in bulk, once every add-on is rotated in memory."""

    stored: list[tuple[Addon, RotationOutcome]] = field(default_factory=list)
    releases: list[Release] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    events: list[AuditEvent] = field(default_factory=list)


def rotate_all(tx: Repository, addons: Sequence[Addon], run: RotationRun) -> list[Rotated]:
    """Rotate every add-on in ``addons`` (locked by ``tx``), in order; any error fails them all.

    An app holding several of them gets one release per rotation, numbered in that order, and
    each release's fingerprint names the app's config right after its rotation. ``skip_busy``
    leaves out (unchanged, still due) add-ons attached to an app another transaction holds.
    """
    if not addons:
        return []
    batch = _read(tx, addons, run)
    writes = _Writes()
    rotated = [_rotate_one(batch, addon, run, writes) for addon in batch.addons]
    tx.store_rotations(writes.stored, run.now)
    changed = {a: v for a, v in batch.versions.items() if v != batch.apps[a].release}
    tx.set_release_versions(changed, run.now)
    tx.add_releases(writes.releases)
    tx.add_deliveries(writes.deliveries)
    tx.add_events(writes.events)
    for done in rotated:
        log.info(
            "rotated %s%s: latest %s, previous %s, %d app(s)",
            done.addon.name,
            " (emergency)" if run.emergency else "",
            done.fingerprints[0],
            done.fingerprints[1],
            len(done.releases),
        )
    return rotated


def _read(tx: Repository, addons: Sequence[Addon], run: RotationRun) -> _Batch:
    """Lock the apps and read all the batch needs, in a few queries."""
    ids = [a.id for a in addons]
    where: dict[str, dict[str, list[str]]] = {a: {} for a in ids}
    for addon_id, app_id, name in tx.attachment_links(addon_ids=ids):  # by app, then name
        where[addon_id].setdefault(app_id, []).append(name)
    wanted = sorted({app_id for apps in where.values() for app_id in apps})
    apps = tx.lock_apps(wanted, skip_locked=run.skip_busy)
    if run.skip_busy and len(apps) < len(wanted):
        # An app another transaction holds: its add-ons wait (still due) for a later batch.
        addons = [a for a in addons if apps.keys() >= where[a.id].keys()]
        ids = [a.id for a in addons]
    app_ids = sorted({app_id for a in ids for app_id in where[a]})
    pairs = tx.get_pairs(ids)
    outcomes = {
        a.id: rotate_pair(pairs[a.id], a.key_version, emergency=run.emergency) for a in addons
    }
    on_app: dict[str, list[tuple[str, str]]] = {app_id: [] for app_id in app_ids}
    for addon_id, app_id, name in tx.attachment_links(app_ids=app_ids):
        on_app[app_id].append((attachment_var_name(name), addon_id))
    others = {addon_id for vars_ in on_app.values() for _, addon_id in vars_} - set(ids)
    values = {addon_id: pair.value for addon_id, pair in pairs.items()}
    values.update({addon_id: pair.value for addon_id, pair in tx.get_pairs(others).items()})
    return _Batch(
        addons=list(addons),
        where=where,
        apps=apps,
        pairs=pairs,
        outcomes=outcomes,
        on_app=on_app,
        values=values,
        plain=tx.get_plain_vars_of(app_ids),
        hooks=tx.list_webhooks_of(app_ids),
        versions={app_id: apps[app_id].release for app_id in app_ids},
    )


def _rotate_one(batch: _Batch, addon: Addon, run: RotationRun, writes: _Writes) -> Rotated:
    """Rotate one add-on in memory: its new state, a release per attached app, its audit event."""
    pair, outcome = batch.pairs[addon.id], batch.outcomes[addon.id]
    batch.values[addon.id] = outcome.pair.value
    updated = replace(
        addon,
        key_version=outcome.latest_version,
        last_rotated_at=run.now,
        next_rotation_at=next_rotation_at(run.now, addon.period),
        updated_at=run.now,
    )
    writes.stored.append((updated, outcome))
    made = [
        _release(batch, addon, app_id, ", ".join(att_names), run, writes)
        for app_id, att_names in batch.where[addon.id].items()
    ]
    writes.releases += made
    retired = (
        f"{pair.latest.fingerprint},{pair.previous.fingerprint}"
        if run.emergency
        else pair.previous.fingerprint
    )
    writes.events.append(
        AuditEvent(
            new_id(),
            run.now,
            run.actor,
            "addon.rotate_emergency" if run.emergency else "addon.rotate",
            "addon",
            addon.id,
            addon.name,
            {
                "retired": retired,
                "latest": outcome.pair.latest.fingerprint,
                "previous": outcome.pair.previous.fingerprint,
                "apps": str(len(made)),
            },
        )
    )
    return Rotated(updated, outcome.pair.fingerprints, made)


def _release(
    batch: _Batch, addon: Addon, app_id: str, attachments: str, run: RotationRun, writes: _Writes
) -> Release:
    """The next release of ``app_id`` after ``addon`` rotated, and its webhook deliveries."""
    batch.versions[app_id] += 1
    config = dict(batch.plain[app_id])
    config.update({var: batch.values[held] for var, held in batch.on_app[app_id]})
    snapshot = json.dumps(config, sort_keys=True).encode()
    release = Release(
        id=new_id(),
        app_id=app_id,
        version=batch.versions[app_id],
        description=describe_rotation(attachments, addon.name, emergency=run.emergency),
        config_fingerprint=run.fp.fingerprint(snapshot),
        actor=run.actor,
        created_at=run.now,
    )
    hooks = batch.hooks[app_id]
    if hooks:  # most apps have none: skip building the app's next state
        app = replace(batch.apps[app_id], release=release.version, updated_at=run.now)
        writes.deliveries += release_deliveries(app, hooks, release, run.now)
    return release
