"""Claiming due add-ons (many schedulers, each add-on once) and writing rotations in bulk."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from securekey.domain.models import Addon, KeyState
from securekey.domain.rotation import RotationOutcome
from securekey.store import rows
from securekey.store import tables as t
from securekey.store.repository.base import RepositoryBase

__all__ = ["SchedulingPart"]

Rows = list[dict[str, Any]]


def _matching(query: Any, plan: str | None, app_id: str | None) -> Any:
    """``query`` narrowed to add-ons on ``plan`` and/or billed to or attached to ``app_id``."""
    if plan is not None:
        query = query.where(t.addons.c.plan == plan)
    if app_id is not None:
        attached = sa.select(t.attachments.c.addon_id).where(t.attachments.c.app_id == app_id)
        query = query.where(sa.or_(t.addons.c.app_id == app_id, t.addons.c.id.in_(attached)))
    return query


class SchedulingPart(RepositoryBase):
    """Which add-ons are due, who rotates them, and the bulk writes of a batch of rotations."""

    def has_due(self, now: datetime) -> bool:
        # ``min()`` of an indexed column is one index probe on both backends whatever the
        # statistics say. ``WHERE next_rotation_at <= :now LIMIT 1`` was not: with no (or
        # stale) statistics PostgreSQL guesses a third of the rows match and scans the table
        # for the first one, 209 ms at 1,000,000 add-ons when none is due.
        soonest = self.conn.execute(sa.select(sa.func.min(t.addons.c.next_rotation_at))).scalar()
        if soonest is None:
            return False
        return bool(soonest <= (now if now.tzinfo is not None else now.replace(tzinfo=UTC)))

    def claim_due(self, now: datetime, exclude: Collection[str], limit: int) -> list[Addon]:
        query = (
            sa.select(t.addons)
            .where(t.addons.c.next_rotation_at <= now)
            .order_by(t.addons.c.next_rotation_at)
            .limit(limit)
        )
        if exclude:
            query = query.where(t.addons.c.id.not_in(list(exclude)))
        # Another process holding a row is rotating it: skip it, never wait, never repeat.
        return self._all(self._locking(query, skip_locked=True), rows.addon)

    def lock_addons(
        self,
        *,
        after: str | None,
        limit: int,
        plan: str | None = None,
        app_id: str | None = None,
    ) -> list[Addon]:
        query = _matching(sa.select(t.addons), plan, app_id).order_by(t.addons.c.id).limit(limit)
        if after is not None:
            query = query.where(t.addons.c.id > after)
        # Wait for a scheduler holding one (it commits soon); id order never deadlocks.
        return self._all(self._locking(query), rows.addon)

    def count_addons(
        self, *, after: str | None = None, plan: str | None = None, app_id: str | None = None
    ) -> int:
        query = _matching(sa.select(sa.func.count()).select_from(t.addons), plan, app_id)
        if after is not None:
            query = query.where(t.addons.c.id > after)
        return int(self.conn.execute(query).scalar_one())

    def store_rotations(
        self, rotations: Sequence[tuple[Addon, RotationOutcome]], at: datetime
    ) -> None:
        moved, gone, fresh = self._key_changes(rotations, at)
        keys = ("addon_id", "version")
        self._bulk_update(t.key_versions, keys, moved)
        # History keeps fingerprints and times; the material leaves the database.
        self._bulk_update(t.key_versions, keys, gone)
        self._bulk_insert(t.key_versions, fresh)
        if rotations:
            self._store_rotated_addons([addon for addon, _ in rotations])

    def _key_changes(
        self, rotations: Sequence[tuple[Addon, RotationOutcome]], at: datetime
    ) -> tuple[Rows, Rows, Rows]:
        """The key versions that change state, that leave service, and that are new."""
        moved: Rows = []
        gone: Rows = []
        fresh: Rows = []
        for addon, outcome in rotations:
            for version, state in outcome.transitions:
                if state in (KeyState.RETIRED, KeyState.REVOKED):
                    gone.append(
                        {"state": state.value, "material_enc": None, "retired_at": at}
                        | {"addon_id": addon.id, "version": version}
                    )
                else:
                    moved.append({"state": state.value, "addon_id": addon.id, "version": version})
            new_versions = [(outcome.latest_version, KeyState.LATEST, outcome.pair.latest)]
            if outcome.previous_version not in {v for v, _ in outcome.transitions}:
                new_versions.append(
                    (outcome.previous_version, KeyState.PREVIOUS, outcome.pair.previous)
                )
            fresh += [rows.key_row(self.cipher, addon.id, v, s, k, at) for v, s, k in new_versions]
        return moved, gone, fresh

    def _store_rotated_addons(self, addons: Sequence[Addon]) -> None:
        """The add-ons' new key version and rotation times, in one statement."""
        self._bulk_update(
            t.addons,
            ("id",),
            [
                {
                    "key_version": a.key_version,
                    "last_rotated_at": a.last_rotated_at,
                    "next_rotation_at": a.next_rotation_at,
                    "updated_at": a.updated_at,
                    "id": a.id,
                }
                for a in addons
            ],
        )
