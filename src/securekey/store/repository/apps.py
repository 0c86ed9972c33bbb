"""Apps and their plain config vars (encrypted per value, bound to the app and the name)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime

import sqlalchemy as sa

from securekey.domain.models import App
from securekey.store import rows
from securekey.store import tables as t
from securekey.store.aad import var_aad
from securekey.store.repository.base import RepositoryBase

__all__ = ["AppsPart"]


class AppsPart(RepositoryBase):
    """Apps by id or name, and their config vars."""

    def add_app(self, app: App) -> None:
        self.conn.execute(t.apps.insert().values(**rows.app_row(app)))

    def get_app(self, ref: str, *, lock: bool = False) -> App | None:
        return self._by_ref(t.apps, ref, lock, rows.app)

    def list_apps(self) -> list[App]:
        return self._all(sa.select(t.apps).order_by(t.apps.c.name), rows.app)

    def rename_app(self, app_id: str, name: str, at: datetime) -> None:
        self.conn.execute(
            t.apps.update().where(t.apps.c.id == app_id).values(name=name, updated_at=at)
        )

    def delete_app(self, app_id: str) -> None:
        self.conn.execute(t.apps.delete().where(t.apps.c.id == app_id))

    def lock_apps(self, app_ids: Collection[str], *, skip_locked: bool = False) -> dict[str, App]:
        if not app_ids:
            return {}
        query = sa.select(t.apps).where(self._among(t.apps.c.id, app_ids)).order_by(t.apps.c.id)
        # One statement, rows locked in id order: the order every use case takes apps in.
        # Skipping, a scheduler never waits: apps another transaction holds are left out.
        return {a.id: a for a in self._all(self._locking(query, skip_locked=skip_locked), rows.app)}

    # -------------------------------------------------------- plain config vars

    def get_plain_vars(self, app_id: str) -> dict[str, str]:
        return self.get_plain_vars_of([app_id])[app_id]

    def get_plain_vars_of(self, app_ids: Collection[str]) -> dict[str, dict[str, str]]:
        found: dict[str, dict[str, str]] = {app_id: {} for app_id in app_ids}
        if not app_ids:
            return found
        cv = t.config_vars.c
        query = sa.select(cv.app_id, cv.name, cv.value_enc).where(self._among(cv.app_id, app_ids))
        for app_id, name, blob in self.conn.execute(query):
            found[app_id][name] = self.cipher.decrypt(blob, var_aad(app_id, name)).decode()
        return found

    def put_plain_vars(self, app_id: str, changes: Mapping[str, str | None]) -> None:
        cv = t.config_vars.c
        for name, value in changes.items():
            self.conn.execute(t.config_vars.delete().where(cv.app_id == app_id, cv.name == name))
            if value is not None:
                blob = self.cipher.encrypt(value.encode(), var_aad(app_id, name))
                self.conn.execute(
                    t.config_vars.insert().values(app_id=app_id, name=name, value_enc=blob)
                )
