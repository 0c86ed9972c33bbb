"""Webhooks (secret and authorization encrypted, bound to the hook) and their deliveries."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import RowMapping

from securekey.domain.models import Delivery, Webhook
from securekey.store import rows
from securekey.store import tables as t
from securekey.store.repository.base import RepositoryBase

__all__ = ["WebhooksPart"]

#: What a delivery attempt changes.
_ATTEMPT_COLUMNS = (
    "status",
    "num_attempts",
    "next_attempt_at",
    "last_code",
    "last_error",
    "updated_at",
)


class WebhooksPart(RepositoryBase):
    """An app's webhooks; deliveries queued, claimed by one sender, and updated per attempt."""

    def _webhook(self, row: RowMapping) -> Webhook:
        return rows.webhook(self.cipher, row)

    def add_webhook(self, webhook: Webhook) -> None:
        self.conn.execute(t.webhooks.insert().values(**rows.webhook_row(self.cipher, webhook)))

    def get_webhook(self, app_id: str, webhook_id: str) -> Webhook | None:
        c = t.webhooks.c
        query = sa.select(t.webhooks).where(c.app_id == app_id, c.id == webhook_id)
        return self._one(query, self._webhook)

    def list_webhooks(self, app_id: str) -> list[Webhook]:
        return self.list_webhooks_of([app_id])[app_id]

    def list_webhooks_of(self, app_ids: Collection[str]) -> dict[str, list[Webhook]]:
        found: dict[str, list[Webhook]] = {app_id: [] for app_id in app_ids}
        if not app_ids:
            return found
        c = t.webhooks.c
        query = (
            sa.select(t.webhooks).where(self._among(c.app_id, app_ids)).order_by(c.created_at, c.id)
        )
        for hook in self._all(query, self._webhook):
            found[hook.app_id].append(hook)
        return found

    def delete_webhook(self, webhook_id: str) -> None:
        self.conn.execute(
            t.webhook_deliveries.delete().where(t.webhook_deliveries.c.webhook_id == webhook_id)
        )
        self.conn.execute(t.webhooks.delete().where(t.webhooks.c.id == webhook_id))

    # ----------------------------------------------------------- deliveries

    def add_delivery(self, delivery: Delivery) -> None:
        self.add_deliveries([delivery])

    def add_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        if deliveries:
            self._bulk_insert(t.webhook_deliveries, [rows.to_row(d) for d in deliveries])

    def get_delivery(self, app_id: str, delivery_id: str) -> Delivery | None:
        c = t.webhook_deliveries.c
        query = sa.select(t.webhook_deliveries).where(c.app_id == app_id, c.id == delivery_id)
        return self._one(query, rows.delivery)

    def list_deliveries(self, app_id: str) -> list[Delivery]:
        c = t.webhook_deliveries.c
        query = (
            sa.select(t.webhook_deliveries).where(c.app_id == app_id).order_by(c.created_at, c.id)
        )
        return self._all(query, rows.delivery)

    def claim_due_delivery(
        self, now: datetime, exclude: Collection[str], exclude_webhooks: Collection[str] = ()
    ) -> Delivery | None:
        c = t.webhook_deliveries.c
        query = (
            sa.select(t.webhook_deliveries)
            .where(c.next_attempt_at.is_not(None), c.next_attempt_at <= now)
            .order_by(c.next_attempt_at)
            .limit(1)
        )
        if exclude:
            query = query.where(c.id.not_in(list(exclude)))
        if exclude_webhooks:
            query = query.where(c.webhook_id.not_in(list(exclude_webhooks)))
        return self._one(self._locking(query, skip_locked=True), rows.delivery)

    def update_delivery(self, delivery: Delivery) -> None:
        """Write what an attempt changed (the delivery's identity and payload never change)."""
        self.conn.execute(
            t.webhook_deliveries.update()
            .where(t.webhook_deliveries.c.id == delivery.id)
            .values({name: getattr(delivery, name) for name in _ATTEMPT_COLUMNS})
        )
