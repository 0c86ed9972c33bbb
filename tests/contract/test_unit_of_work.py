"""The unit of work every use case runs in, against every store backend (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from securekey.crypto import Cipher
from securekey.domain.clock import FixedClock
from securekey.domain.models import AuditQuery
from securekey.exceptions import NotFoundError
from securekey.services import SecureKeyService
from securekey.services.tokens import TokenService
from securekey.services.unit_of_work import UnitOfWork
from securekey.services.webhooks import WebhookService
from securekey.store.sql import SqlStore


def test_audit_events_are_written_in_order_when_the_block_commits(
    store: SqlStore, cipher: Cipher, clock: FixedClock
) -> None:
    """Events collected in a block reach the log in order, with the block's actor and instant."""
    app = SecureKeyService(store, cipher, clock).create_app("service-1")
    with UnitOfWork(store, clock, actor="alice", fingerprinter=cipher) as uow:
        uow.audit("test.first", uow.app("service-1"))
        uow.audit("test.second", app, {"n": "2"})
        release = uow.new_release(app, "Test release")
    found = SecureKeyService(store, cipher, clock).audit_events(AuditQuery(actor="alice"))
    assert [(e.action, e.target_name, e.at) for e in found] == [
        ("test.first", "service-1", clock.now()),
        ("test.second", "service-1", clock.now()),
    ]
    assert found[1].details == {"n": "2"}
    assert (release.version, release.actor) == (2, "alice")


def test_a_failing_block_writes_nothing(store: SqlStore, cipher: Cipher, clock: FixedClock) -> None:
    """An error inside the block rolls back its release and drops its collected audit events."""
    service = SecureKeyService(store, cipher, clock)
    app = service.create_app("service-1")

    def fail_halfway() -> None:
        with UnitOfWork(store, clock, actor="alice", fingerprinter=cipher) as uow:
            uow.new_release(app, "Never made")
            uow.audit("test.never", app)
            uow.app("no-such-app")

    with pytest.raises(NotFoundError):
        fail_halfway()
    assert service.audit_events(actor="alice") == []
    assert [r.version for r in service.releases("service-1")] == [1]


@pytest.mark.parametrize("ref", ["", "x" * 201, "service-1\x00", "no-such-app"])
def test_every_service_finds_an_app_the_same_way(
    store: SqlStore, cipher: Cipher, clock: FixedClock, ref: str
) -> None:
    """An empty, overlong, NUL-bearing or unknown app reference is the same 404 everywhere."""
    service = SecureKeyService(store, cipher, clock)
    service.create_app("service-1")
    calls = [
        lambda: service.get_app(ref),
        lambda: WebhookService(store, clock).list_hooks(ref),
        lambda: TokenService(store, cipher, clock).list_app_tokens(ref),
    ]
    for call in calls:
        with pytest.raises(NotFoundError) as caught:
            call()
        assert caught.value.resource == "app"
