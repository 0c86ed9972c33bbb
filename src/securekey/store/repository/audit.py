"""The audit log: one event per committed state change, read back newest or oldest first."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from securekey.domain.models import AuditEvent
from securekey.store import rows
from securekey.store import tables as t
from securekey.store.repository.base import RepositoryBase, where_given

__all__ = ["AuditPart"]


class AuditPart(RepositoryBase):
    """Audit events written in the transaction they describe (logged once it commits)."""

    def add_event(self, event: AuditEvent) -> None:
        self.add_events([event])

    def add_events(self, events: Sequence[AuditEvent]) -> None:
        self._events.extend(events)
        if events:
            self.conn.execute(t.audit_events.insert(), [rows.event_row(e) for e in events])

    def list_events(
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
        c = t.audit_events.c
        query = sa.select(t.audit_events).order_by(c.seq.desc() if newest_first else c.seq)
        query = where_given(
            query,
            (c.action, action),
            (c.target_id, target_id),
            (c.actor, actor),
            (c.target_type, target_type),
        )
        if target is not None:
            query = query.where(sa.or_(c.target_name == target, c.target_id == target))
        if app is not None:
            # The app itself, or an event whose details name it (attach, detach, add-on create).
            # details is JSON written with sort_keys and default separators, so the pair is exact.
            named = json.dumps({"app": app})[1:-1]
            query = query.where(
                sa.or_(
                    sa.and_(c.target_type == "app", c.target_name == app),
                    c.details.contains(named, autoescape=True),
                )
            )
        if since is not None:
            query = query.where(c.at >= since)
        if until is not None:
            query = query.where(c.at < until)
        if after_seq is not None:
            query = query.where(c.seq > after_seq)
        if before_seq is not None:
            query = query.where(c.seq < before_seq)
        if limit is not None:
            query = query.limit(limit)
        return self._all(query, rows.event)
