"""Leasing webhook deliveries, on every store backend: one attempt in flight per webhook."""

from __future__ import annotations

from datetime import timedelta

from securekey.domain.clock import FixedClock
from securekey.services import SecureKeyService
from securekey.services.webhooks import WebhookService


def test_a_busy_webhook_is_passed_over_for_the_next_one(
    service: SecureKeyService, clock: FixedClock
) -> None:
    """While one webhook's delivery is in flight its later ones wait; another hook's go first."""
    hooks = WebhookService(service.store, clock, allow_private=True)
    service.create_app("service-1")
    service.create_app("service-2")
    slow, _ = hooks.create("service-1", "http://127.0.0.1:9/slow", ["api:release"])
    fast, _ = hooks.create("service-2", "http://127.0.0.1:9/fast", ["api:release"])
    for _ in range(3):  # three events queued for the slow hook first
        service.set_config("service-1", {"N": str(clock.now().timestamp())})
        clock.advance(timedelta(seconds=1))
    service.set_config("service-2", {"GO": "1"})
    clock.advance(timedelta(seconds=1))

    first = hooks.lease_next()
    assert first is not None
    assert first[1].id == slow.id
    second = hooks.lease_next(busy_hooks={slow.id})
    assert second is not None
    assert second[1].id == fast.id
    assert hooks.lease_next(busy_hooks={slow.id, fast.id}) is None
    # Once the slow hook is free again, its next event (in order) is leased.
    third = hooks.lease_next(busy_hooks={fast.id})
    assert third is not None
    assert third[1].id == slow.id
    assert third[0].created_at > first[0].created_at
