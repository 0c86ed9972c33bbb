"""Releases of an app, and the release notices told on commit (in-process and ``NOTIFY``).

Every line that announces a release or an identity change is in this module, under
"release notices", so the notice path has one place in the store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import sqlalchemy as sa

from securekey.domain.models import Release
from securekey.services.ports import IDENTITY_CHANGED, ReleaseNotice
from securekey.store import rows
from securekey.store import tables as t
from securekey.store.repository.base import RepositoryBase

__all__ = ["ReleasesPart"]


class ReleasesPart(RepositoryBase):
    """An app's release counter and history; new releases are announced on commit."""

    def bump_release(self, app_id: str, at: datetime) -> int:
        version = self.conn.execute(
            t.apps.update()
            .where(t.apps.c.id == app_id)
            .values(release_version=t.apps.c.release_version + 1, updated_at=at)
            .returning(t.apps.c.release_version)
        ).scalar_one()
        return int(version)

    def set_release_versions(self, versions: Mapping[str, int], at: datetime) -> None:
        if not versions:
            return
        self._bulk_update(
            t.apps,
            ("id",),
            [{"release_version": v, "updated_at": at, "id": a} for a, v in versions.items()],
        )

    def get_release(self, app_id: str, version: int) -> Release | None:
        c = t.releases.c
        return self._one(
            sa.select(t.releases).where(c.app_id == app_id, c.version == version), rows.release
        )

    def get_release_by_id(self, app_id: str, release_id: str) -> Release | None:
        c = t.releases.c
        return self._one(
            sa.select(t.releases).where(c.app_id == app_id, c.id == release_id), rows.release
        )

    def list_releases(
        self,
        app_id: str,
        *,
        start: int | None = None,
        end: int | None = None,
        limit: int | None = None,
        descending: bool = False,
    ) -> list[Release]:
        query = sa.select(t.releases).where(t.releases.c.app_id == app_id)
        if start is not None:
            query = query.where(t.releases.c.version >= start)
        if end is not None:
            query = query.where(t.releases.c.version <= end)
        order = t.releases.c.version.desc() if descending else t.releases.c.version.asc()
        query = query.order_by(order)
        if limit is not None:
            query = query.limit(limit)
        return self._all(query, rows.release)

    # ------------------------------------------------------- release notices

    def announce_identity_change(self, app_id: str) -> None:
        self._announce(ReleaseNotice(app_id, IDENTITY_CHANGED))

    def add_release(self, release: Release) -> None:
        self.conn.execute(t.releases.insert().values(**rows.to_row(release)))
        self._announce(ReleaseNotice(release.app_id, release.version))

    def add_releases(self, releases: Sequence[Release]) -> None:
        if not releases:
            return
        self._bulk_insert(t.releases, [rows.to_row(r) for r in releases])
        self._announce(*(ReleaseNotice(r.app_id, r.version) for r in releases))
