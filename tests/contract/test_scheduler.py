"""The scheduler on both backends, on a FixedClock: what is due rotates once, failures stay alone.

Time only moves when a test moves it; nothing here sleeps waiting for a rotation.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from securekey.domain.clock import FixedClock
from securekey.domain.keys import KeyPair, parse_pair
from securekey.domain.models import new_id
from securekey.scheduler import Scheduler
from securekey.services import SecureKeyService
from securekey.store import SqlStore
from securekey.store import tables as t

INDEX = "ix_addons_next_rotation_at"


def _pair(service: SecureKeyService, app: str, var: str = "SECURE_KEY") -> KeyPair:
    return parse_pair(service.config_vars(app)[var])


def _addon_on_own_app(service: SecureKeyService, app: str, period: str) -> str:
    """A fresh app billing one add-on with ``period``; returns the add-on's name."""
    service.create_app(app)
    return service.create_addon(
        app, "securekey:daily", name=f"keys-{app}", period=period
    ).addon.name


def test_due_addons_rotate_at_tick_and_others_do_not(
    service: SecureKeyService, clock: FixedClock
) -> None:
    """A tick rotates exactly the add-ons whose time has come, each once, and reschedules them."""
    fast = _addon_on_own_app(service, "app-fast", "10s")
    slow = _addon_on_own_app(service, "app-slow", "1m")
    daily = _addon_on_own_app(service, "app-daily", "1d")
    before = {app: _pair(service, app) for app in ("app-fast", "app-slow", "app-daily")}
    scheduler = Scheduler(service, clock)

    clock.advance(timedelta(seconds=9))
    assert scheduler.tick().rotated == []
    now = clock.advance(timedelta(seconds=1))
    result = scheduler.tick()
    assert [r.addon.name for r in result.rotated] == [fast]
    assert result.failed == []
    after = _pair(service, "app-fast")
    assert after.previous == before["app-fast"].latest
    assert service.get_addon(fast).next_rotation_at == now + timedelta(seconds=10)
    assert service.get_addon(fast).last_rotated_at == now
    assert _pair(service, "app-slow") == before["app-slow"]
    assert _pair(service, "app-daily") == before["app-daily"]
    assert [r.version for r in service.releases("app-fast")] == [1, 2, 3]
    assert [r.version for r in service.releases("app-slow")] == [1, 2]
    # The same instant again: nothing is due any more.
    assert scheduler.tick().rotated == []

    clock.advance(timedelta(seconds=50))
    names = sorted(r.addon.name for r in scheduler.tick().rotated)
    assert names == sorted([fast, slow])
    assert service.get_addon(daily).key_version == 2
    assert scheduler.rotations == 3
    assert len(service.audit_events(action="addon.rotate")) == 3


def test_an_addon_is_due_at_exactly_its_time(service: SecureKeyService, clock: FixedClock) -> None:
    """next_rotation_at == now is due; one microsecond earlier is not."""
    name = _addon_on_own_app(service, "app-one", "10s")
    scheduler = Scheduler(service, clock)
    clock.advance(timedelta(seconds=10) - timedelta(microseconds=1))
    assert not service.has_due(clock.now())
    assert scheduler.tick().rotated == []
    clock.advance(timedelta(microseconds=1))
    assert service.has_due(clock.now())
    assert [r.addon.name for r in scheduler.tick().rotated] == [name]


def test_after_long_downtime_an_addon_rotates_once_then_schedules_from_now(
    service: SecureKeyService, clock: FixedClock
) -> None:
    """Down for 360 periods: one rotation (PREVIOUS is still the old LATEST), next one period on."""
    name = _addon_on_own_app(service, "app-one", "10s")
    original = _pair(service, "app-one")
    scheduler = Scheduler(service, clock)
    now = clock.advance(timedelta(hours=1))
    result = scheduler.tick()
    assert len(result.rotated) == 1
    assert (
        len(service.audit_events(action="addon.rotate", target_id=result.rotated[0].addon.id)) == 1
    )
    addon = service.get_addon(name)
    assert addon.key_version == 3
    assert addon.next_rotation_at == now + timedelta(seconds=10)
    # Rotating twice would have dropped the PREVIOUS that consumers still hold.
    assert _pair(service, "app-one").previous == original.latest
    assert [r.version for r in service.releases("app-one")] == [1, 2, 3]
    assert scheduler.tick().rotated == []
    clock.advance(timedelta(seconds=10))
    assert len(scheduler.tick().rotated) == 1
    assert service.get_addon(name).key_version == 4


def test_one_tick_rotates_at_most_max_per_tick(
    service: SecureKeyService, clock: FixedClock
) -> None:
    """A tick stops at max_per_tick rotations; the next tick takes the rest."""
    for i in range(5):
        _addon_on_own_app(service, f"app-{i}", "10s")
    scheduler = Scheduler(service, clock, max_per_tick=2)
    clock.advance(timedelta(seconds=10))
    assert [len(scheduler.tick().rotated) for _ in range(4)] == [2, 2, 1, 0]
    assert {a.key_version for a in service.list_addons()} == {3}


def _raw_rows(store: SqlStore, addon_id: str) -> Any:
    """The add-on's own row and key rows exactly as stored (ciphertext included)."""
    with store.engine.connect() as conn:
        addon = conn.execute(sa.select(t.addons).where(t.addons.c.id == addon_id)).all()
        keys = conn.execute(
            sa.select(t.key_versions)
            .where(t.key_versions.c.addon_id == addon_id)
            .order_by(t.key_versions.c.version)
        ).all()
    return addon, keys


def _set_latest_blob(store: SqlStore, addon_id: str, blob: bytes) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            t.key_versions.update()
            .where(t.key_versions.c.addon_id == addon_id, t.key_versions.c.state == "latest")
            .values(material_enc=blob)
        )


def test_a_failing_rotation_changes_nothing_is_audited_and_the_others_rotate(
    service: SecureKeyService, store: SqlStore, clock: FixedClock
) -> None:
    """A rotation whose stored key no longer decrypts rolls back alone and is logged as failed."""
    names = [_addon_on_own_app(service, f"app-{i}", "10s") for i in range(3)]
    bad = service.get_addon(names[1])
    bad_pair = _pair(service, "app-1")
    (_, keys) = _raw_rows(store, bad.id)
    good_blob = next(k.material_enc for k in keys if k.state == "latest")
    tampered = bytearray(good_blob)
    tampered[-1] ^= 0xFF  # break the GCM tag: decryption now raises DecryptionError for real
    _set_latest_blob(store, bad.id, bytes(tampered))
    stored_before = _raw_rows(store, bad.id)

    scheduler = Scheduler(service, clock)
    clock.advance(timedelta(seconds=10))
    result = scheduler.tick()
    assert result.failed == [bad.id]
    assert sorted(r.addon.name for r in result.rotated) == sorted([names[0], names[2]])
    assert _raw_rows(store, bad.id) == stored_before
    assert [r.version for r in service.releases("app-1")] == [1, 2]
    assert service.audit_events(action="addon.rotate", target_id=bad.id) == []
    failures = service.audit_events(action="addon.rotate_failed")
    assert [(e.target_id, e.target_name, e.actor) for e in failures] == [
        (bad.id, bad.name, "scheduler")
    ]
    assert "failed authentication" in failures[0].details["reason"]
    assert scheduler.failures == 1

    # Still due, so the next tick tries again (and fails again) while the others wait their turn.
    again = scheduler.tick()
    assert (again.failed, again.rotated) == ([bad.id], [])
    assert len(service.audit_events(action="addon.rotate_failed")) == 2

    # Once the data is repaired it rotates normally, from the pair it had all along.
    _set_latest_blob(store, bad.id, good_blob)
    repaired = scheduler.tick()
    assert [r.addon.id for r in repaired.rotated] == [bad.id]
    assert _pair(service, "app-1").previous == bad_pair.latest


@contextmanager
def _statements(store: SqlStore) -> Iterator[list[tuple[str, Any]]]:
    """Capture every SQL statement (and its parameters) the store sends while the block runs."""
    seen: list[tuple[str, Any]] = []

    def capture(_c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, _many: bool) -> None:
        seen.append((statement, params))

    sa.event.listen(store.engine, "before_cursor_execute", capture)
    try:
        yield seen
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", capture)


def _seed_many(store: SqlStore, clock: FixedClock, count: int) -> None:
    """``count`` add-ons spread over the next 28 days, written in bulk for speed."""
    now = clock.now()
    apps, addons = [], []
    for i in range(count):
        app_id, when = new_id(), now + timedelta(seconds=60 + i * 28 * 86400 / count)
        apps.append(
            {"id": app_id, "name": f"bulk-{i}", "release_version": 1}
            | {"created_at": now, "updated_at": now}
        )
        addons.append(
            {"id": new_id(), "name": f"bulk-keys-{i}", "app_id": app_id, "plan": "monthly"}
            | {"period_seconds": 28 * 86400.0, "key_version": 2, "created_at": now}
            | {"updated_at": now, "last_rotated_at": now, "next_rotation_at": when}
        )
    with store.engine.begin() as conn:
        conn.execute(t.apps.insert(), apps)
        conn.execute(t.addons.insert(), addons)
        conn.exec_driver_sql("ANALYZE")


def _plans(store: SqlStore, statements: list[tuple[str, Any]]) -> list[str]:
    """The database's plan for each captured statement that looks for due add-ons."""
    explain = "EXPLAIN QUERY PLAN " if store.dialect == "sqlite" else "EXPLAIN "
    out = []
    with store.engine.connect() as conn:
        for statement, params in statements:
            due = "next_rotation_at <=" in statement or "min(addons.next_rotation_at)" in statement
            if due and "FROM addons" in statement:
                rows = conn.exec_driver_sql(explain + statement, params).all()
                out.append("\n".join(" ".join(str(c) for c in row) for row in rows))
    return out


def test_the_due_query_walks_the_next_rotation_index(
    service: SecureKeyService, store: SqlStore, clock: FixedClock
) -> None:
    """With thousands of add-ons, the queries a tick sends use ix_addons_next_rotation_at."""
    _seed_many(store, clock, 3000)
    name = _addon_on_own_app(service, "app-real", "10s")
    scheduler = Scheduler(service, clock)
    with _statements(store) as idle:
        assert scheduler.tick().rotated == []
    clock.advance(timedelta(seconds=10))
    with _statements(store) as busy:
        assert [r.addon.name for r in scheduler.tick().rotated] == [name]

    idle_plans, busy_plans = _plans(store, idle), _plans(store, busy)
    assert len(idle_plans) == 1  # nothing due: one indexed probe, no claim
    assert len(busy_plans) >= 2  # the probe, then claims until none is left
    for plan in idle_plans + busy_plans:
        assert INDEX in plan, plan
        assert "Seq Scan" not in plan, plan
        assert "SCAN addons" not in plan, plan

    # The check can fail: without the index the same statements scan the table.
    with store.engine.begin() as conn:
        conn.exec_driver_sql(f"DROP INDEX {INDEX}")
        conn.exec_driver_sql("ANALYZE")
    for plan in _plans(store, busy):
        assert INDEX not in plan
        # SQLite shows the unindexed min() as "SEARCH addons" with no "USING … INDEX".
        assert "Seq Scan" in plan or ("addons" in plan and "USING" not in plan), plan


@pytest.mark.parametrize("period", ["1s", "10s"])
def test_short_custom_periods_keep_rotating_tick_after_tick(
    service: SecureKeyService, clock: FixedClock, period: str
) -> None:
    """A custom period rotates once per elapsed period, tick after tick, PREVIOUS := LATEST."""
    name = _addon_on_own_app(service, "app-one", period)
    step = service.get_addon(name).period
    scheduler = Scheduler(service, clock)
    for n in range(5):
        before = _pair(service, "app-one")
        clock.advance(step)
        assert len(scheduler.tick().rotated) == 1
        assert _pair(service, "app-one").previous == before.latest
        assert service.get_addon(name).key_version == 3 + n
