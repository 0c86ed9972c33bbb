"""The webhook outbox: the ``api:release`` deliveries a release queues, in its own transaction.

Written by every use case that makes a release (one at a time, or a rotation batch in bulk);
``securekey.services.webhooks`` manages the webhooks and sends what is queued here.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime

from securekey.domain.models import App, Delivery, Release, Webhook, new_id
from securekey.services.ports import Repository
from securekey.services.resources import ACCOUNT_EMAIL, ACCOUNT_ID, iso, release_resource

__all__ = ["enqueue_release", "release_deliveries"]


def enqueue_release(tx: Repository, app: App, release: Release, now: datetime) -> None:
    """Queue an ``api:release`` event for each of the app's webhooks (same transaction)."""
    for delivery in release_deliveries(app, tx.list_webhooks(app.id), release, now):
        tx.add_delivery(delivery)


def release_deliveries(
    app: App, webhooks: list[Webhook], release: Release, now: datetime
) -> list[Delivery]:
    """The deliveries of an ``api:release`` event to those of ``webhooks`` that include it."""
    hooks = [h for h in webhooks if "api:release" in h.include]
    if not hooks:
        return []
    current = replace(app, release=release.version)
    event_id = new_id()
    payload = json.dumps(
        {
            "id": event_id,
            "action": "create",
            "actor": {"id": ACCOUNT_ID, "email": ACCOUNT_EMAIL},
            "created_at": iso(now),
            "updated_at": iso(now),
            "published_at": iso(now),
            "data": release_resource(release, current),
            "previous_data": {},
            "resource": "release",
            "sequence": None,
            "version": "application/vnd.heroku+json; version=3",
        },
        sort_keys=True,
    )
    return [
        Delivery(
            new_id(),
            hook.id,
            app.id,
            event_id,
            "api:release",
            payload,
            "pending",
            0,
            now,
            None,
            None,
            now,
            now,
        )
        for hook in hooks
    ]
