"""Every domain object the repository stores reads back equal, on every backend."""

from __future__ import annotations

from dataclasses import astuple
from datetime import UTC, datetime, timedelta

from securekey.domain.keys import KeyPair
from securekey.domain.models import (
    Addon,
    App,
    Attachment,
    AuditEvent,
    AuditQuery,
    Delivery,
    Release,
    Token,
    TokenKind,
    Webhook,
)
from securekey.store import SqlStore

T0 = datetime(2026, 1, 1, 12, 30, tzinfo=UTC)


def _id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def test_each_field_survives_the_round_trip(store: SqlStore) -> None:
    """Each field of an app, add-on, attachment, release, token, webhook, delivery and audit
    event (renamed columns, enums, JSON and encrypted values among them) reads back unchanged."""
    app = App(_id(1), "round-trip", T0, T0 + timedelta(seconds=1), 3)
    addon = Addon(
        _id(2), "sk-round", app.id, "securekey:daily", timedelta(hours=36), T0, T0, T0, T0, 2
    )
    attachment = Attachment(_id(3), addon.id, app.id, "SECURE", T0, T0)
    release = Release(_id(4), app.id, 1, "Attach SECURE", "0123456789abcdef", "operator", T0)
    token = Token(_id(5), TokenKind.OPERATOR, None, "d" * 64, "ops", T0, T0, "env", "sha256", T0)
    hook = Webhook(
        _id(6), app.id, "https://h.example/x", ("api:release",), "sync", "s", T0, T0, "Bearer b"
    )
    delivery = Delivery(
        _id(7),
        hook.id,
        app.id,
        _id(8),
        "api:release",
        '{"a": 1}',
        "retrying",
        2,
        T0,
        503,
        "e",
        T0,
        T0,
    )
    event = AuditEvent(_id(9), T0, "operator", "app.create", "app", app.id, app.name, {"k": "v"})
    with store.transaction() as repo:
        repo.add_app(app)
        repo.add_addon(addon, KeyPair.fresh())
        repo.add_attachment(attachment)
        repo.add_release(release)
        repo.add_token(token)
        repo.add_webhook(hook)
        repo.add_delivery(delivery)
        repo.add_event(event)
    with store.transaction(write=False) as repo:
        assert repo.get_app(app.id) == app
        assert repo.get_addon(addon.name) == addon
        assert repo.get_attachment(attachment.id) == attachment
        assert repo.get_release(app.id, 1) == release
        assert repo.find_token(token.token_hash) == token
        stored_hook = repo.get_webhook(app.id, hook.id)
        assert stored_hook is not None
        assert astuple(stored_hook) == astuple(hook)  # times too: Webhook's == skips them
        assert repo.get_delivery(app.id, delivery.id) == delivery
        [stored_event] = repo.list_events(AuditQuery())
        assert stored_event.seq > 0
        assert astuple(stored_event)[:-1] == astuple(event)[:-1]
