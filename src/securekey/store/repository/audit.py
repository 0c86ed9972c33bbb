"""The audit log: one event per committed state change, read back newest or oldest first."""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa

from securekey.domain.models import AuditEvent, AuditQuery
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
            self._bulk_insert(t.audit_events, [rows.event_row(e) for e in events])

    def list_events(self, query: AuditQuery) -> list[AuditEvent]:
        q, c = query, t.audit_events.c
        select = sa.select(t.audit_events).order_by(c.seq.desc() if q.newest_first else c.seq)
        action = (c.action, q.action) if isinstance(q.action, str) or q.action is None else None
        select = where_given(
            select,
            *([action] if action else []),
            (c.target_id, q.target_id),
            (c.actor, q.actor),
            (c.target_type, q.target_type),
        )
        if action is None:  # several action names: SQL IN
            select = select.where(c.action.in_(tuple(q.action or ())))
        if q.target is not None:
            select = select.where(sa.or_(c.target_name == q.target, c.target_id == q.target))
        if q.app is not None:
            # The app itself, or an event whose details name it (attach, detach, add-on create).
            # details is JSON written with sort_keys and default separators, so the pair is exact.
            named = json.dumps({"app": q.app})[1:-1]
            select = select.where(
                sa.or_(
                    sa.and_(c.target_type == "app", c.target_name == q.app),
                    c.details.contains(named, autoescape=True),
                )
            )
        if q.since is not None:
            select = select.where(c.at >= q.since)
        if q.until is not None:
            select = select.where(c.at < q.until)
        if q.after_seq is not None:
            select = select.where(c.seq > q.after_seq)
        if q.before_seq is not None:
            select = select.where(c.seq < q.before_seq)
        if q.limit is not None:
            select = select.limit(q.limit)
        return self._all(select, rows.event)
