"""The one-statement bulk writes of a rotation batch store exactly what single writes store."""

from __future__ import annotations

from dataclasses import astuple
from datetime import UTC, datetime, timedelta, timezone

from securekey.domain.clock import FixedClock
from securekey.domain.models import App, AuditEvent, AuditQuery, Delivery, Release, Webhook
from securekey.store import SqlStore

T0 = datetime(2026, 1, 1, 12, 30, 0, 123456, tzinfo=UTC)
#: The same instants written in another zone: stored and read back as UTC.
ELSEWHERE = timezone(timedelta(hours=-5))


def _id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def test_bulk_rows_read_back_equal(store: SqlStore) -> None:
    """Releases, deliveries and audit events written many at a time (NULLs, quotes, braces,
    commas, non-ASCII text and non-UTC times among them) read back field for field."""
    app = App(_id(1), "bulk-rows", T0, T0, 0)
    hook = Webhook(_id(2), app.id, "https://h.example/x", ("api:release",), "sync", "s", T0, T0)
    odd = 'quote " back \\ brace {x} comma , NULL é'
    releases = [
        Release(_id(100 + i), app.id, i + 1, f"{odd} {i}", f"{i:016x}", "operator", T0)
        for i in range(5)
    ]
    releases.append(Release(_id(199), app.id, 6, "", "f" * 16, "x", T0.astimezone(ELSEWHERE)))
    deliveries = [
        Delivery(_id(200), hook.id, app.id, _id(300), "api:release", "{}", "pending", 0, None,
                 None, None, T0, T0),
        Delivery(_id(201), hook.id, app.id, _id(301), "api:release", odd, "retrying", 2,
                 T0.astimezone(ELSEWHERE), 503, odd, T0, T0 + timedelta(microseconds=1)),
    ]  # fmt: skip
    events = [
        AuditEvent(_id(400 + i), T0, "operator", "app.update", "app", app.id, app.name,
                   {"n": str(i), "text": odd})
        for i in range(3)
    ]  # fmt: skip
    with store.transaction() as repo:
        repo.add_app(app)
        repo.add_webhook(hook)
        repo.add_releases(releases)
        repo.add_deliveries(deliveries)
        repo.add_events(events)
        repo.set_release_versions({app.id: 6}, T0.astimezone(ELSEWHERE))
    with store.transaction() as repo:
        stored_releases = repo.list_releases(app.id)
        assert stored_releases == releases  # aware datetimes compare as instants
        assert {r.created_at.tzinfo for r in stored_releases} == {UTC}
        assert repo.get_delivery(app.id, _id(200)) == deliveries[0]
        stored = repo.get_delivery(app.id, _id(201))
        assert stored is not None
        assert stored.next_attempt_at == T0
        assert stored.next_attempt_at.tzinfo is UTC
        assert astuple(stored)[:8] == astuple(deliveries[1])[:8]
        assert astuple(stored)[9:] == astuple(deliveries[1])[9:]
        read = sorted(repo.list_events(AuditQuery()), key=lambda e: e.id)
        assert [astuple(e)[:-1] for e in read] == [astuple(e)[:-1] for e in events]
        # Times are stored as Core stores them, so range queries compare like with like (on
        # SQLite a time with no microseconds must still be written with six digits).
        whole = T0.replace(microsecond=0) + timedelta(hours=1)
        repo.add_events([AuditEvent(_id(500), whole, "x", "app.update", "app", app.id, "n", {})])
        assert [e.id for e in repo.list_events(AuditQuery(since=whole))] == [_id(500)]
        assert [e.id for e in repo.list_events(AuditQuery(until=whole))] == [e.id for e in events]
        got = repo.get_app(app.id)
        assert got is not None
        assert (got.release, got.updated_at) == (6, T0)


def test_has_due_is_false_on_an_empty_table_and_takes_naive_utc(
    store: SqlStore, clock: FixedClock
) -> None:
    """With no add-on nothing is due; a naive ``now`` is read as UTC like the stored times."""
    with store.transaction(write=False) as repo:
        assert repo.has_due(clock.now()) is False
        assert repo.has_due(clock.now().replace(tzinfo=None)) is False
