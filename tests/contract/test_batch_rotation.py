"""Batched rotation on both backends: many add-ons in one transaction, as if rotated one by one.

Releases stay one per app per rotation and gap-free, every release is announced (store listeners
and PostgreSQL NOTIFY), webhook deliveries and audit events are written for each, and an add-on
whose rotation fails in the middle of a batch is rolled back alone while the rest rotate.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta

import psycopg
import pytest
import sqlalchemy as sa

from securekey.crypto import Cipher
from securekey.domain.clock import FixedClock
from securekey.domain.keys import parse_pair
from securekey.exceptions import NotFoundError, SecureKeyError, ValidationError
from securekey.scheduler import Scheduler
from securekey.services import ReleaseNotice, SecureKeyService
from securekey.services.webhooks import WebhookService
from securekey.store import SqlStore
from securekey.store import tables as t
from securekey.store.sql import RELEASE_CHANNEL
from tests import pg
from tests.conftest import drop_pg_database, new_pg_database


def snapshot(store: SqlStore) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table, sorted: equal snapshots mean nothing changed."""
    with store.engine.connect() as conn:
        return {
            table.name: sorted((tuple(r) for r in conn.execute(sa.select(table))), key=repr)
            for table in t.metadata.sorted_tables
        }


def _rows_of(store: SqlStore, addon_id: str) -> object:
    """The add-on's own row and key rows exactly as stored (ciphertext included)."""
    kv = t.key_versions
    with store.engine.connect() as conn:
        addon = conn.execute(sa.select(t.addons).where(t.addons.c.id == addon_id)).all()
        keys = conn.execute(
            sa.select(kv).where(kv.c.addon_id == addon_id).order_by(kv.c.version)
        ).all()
    return addon, keys


def _fleet(service: SecureKeyService) -> list[str]:
    """Three apps; add-ons on daily and weekly plans, two of them shared across apps."""
    for app in ("app-a", "app-b", "app-c"):
        service.create_app(app)
    names = []
    for i, (app, plan) in enumerate(
        [("app-a", "daily"), ("app-a", "weekly"), ("app-b", "daily"), ("app-c", "weekly")]
    ):
        made = service.create_addon(
            app, f"securekey:{plan}", name=f"keys-{i}", attachment_name=f"K{i}"
        )
        names.append(made.addon.name)
    service.attach("keys-0", "app-b", as_="SHARED")
    service.attach("keys-3", "app-a", as_="FROM_C")
    return names


def _pairs(service: SecureKeyService) -> dict[str, str]:
    return {
        f"{app.name}:{var}": value
        for app in service.list_apps()
        for var, value in service.config_vars(app.name).items()
    }


def test_one_batch_gives_each_app_a_release_per_rotation_gap_free(
    service: SecureKeyService, cipher: Cipher, clock: FixedClock
) -> None:
    """Four add-ons due at once, rotated in one batch: releases in order, each snapshot right."""
    _fleet(service)
    before = {a.name: a.release for a in service.list_apps()}
    clock.advance(timedelta(days=8))
    batch = service.rotate_due(clock.now(), limit=10)
    assert (batch.claimed, len(batch.rotated), batch.failed) == (4, 4, [])
    # app-a holds keys-0, keys-1 and keys-3: three rotations, three releases, no gap.
    expected = {"app-a": 3, "app-b": 2, "app-c": 1}
    for app, count in expected.items():
        versions = [r.version for r in service.releases(app)]
        assert versions == list(range(1, before[app] + count + 1))
        assert service.get_app(app).release == before[app] + count
    # The newest release's fingerprint names the app's config as it is now.
    for app in expected:
        last = service.releases(app, descending=True, limit=1)[0]
        config = json.dumps(service.config_vars(app), sort_keys=True).encode()
        assert last.config_fingerprint == cipher.fingerprint(config)
        assert last.actor == "scheduler"
    assert len(service.audit_events(action="addon.rotate")) == 4
    assert {e.actor for e in service.audit_events(action="addon.rotate")} == {"scheduler"}


def test_a_batch_is_what_rotating_one_by_one_would_give(
    store: SqlStore, cipher: Cipher, clock: FixedClock
) -> None:
    """Descriptions, versions and per-release config fingerprints match one-at-a-time rotation."""
    service = SecureKeyService(store, cipher, clock)
    _fleet(service)
    clock.advance(timedelta(days=8))
    batch = service.rotate_due(clock.now(), limit=10)
    # Rebuild what each release's snapshot must have been, add-on after add-on, from history.
    for rotated in batch.rotated:
        for release in rotated.releases:
            assert release.description.endswith(f"by {rotated.addon.name}")
            stored = service.release(release.app_id, str(release.version))
            assert stored == release
    descriptions = [r.description for r in service.releases("app-a")[-3:]]
    assert descriptions == [
        "Update K0 by keys-0",
        "Update K1 by keys-1",
        "Update FROM_C by keys-3",
    ]


def test_every_release_of_a_batch_is_announced_after_commit(
    store: SqlStore, service: SecureKeyService, clock: FixedClock
) -> None:
    """Store listeners hear every release of the batch, once, in version order per app."""
    _fleet(service)
    heard: list[Sequence[ReleaseNotice]] = []
    store.add_listener(heard.append)
    clock.advance(timedelta(days=8))
    batch = service.rotate_due(clock.now(), limit=10)
    made = [(r.app_id, r.version) for rotated in batch.rotated for r in rotated.releases]
    assert len(heard) == 1  # one commit, one call
    assert [(n.app_id, n.version) for n in heard[0]] == made
    assert len(made) == 6


def test_postgres_notifies_every_release_of_a_batch(
    pg_server: pg.PgServer, cipher: Cipher, clock: FixedClock
) -> None:
    """On PostgreSQL each release of a batch is one NOTIFY ``app_id:version``, sent on commit."""
    url = new_pg_database(pg_server)
    store = SqlStore.open(url, cipher)
    try:
        service = SecureKeyService(store, cipher, clock)
        _fleet(service)
        dsn = store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"LISTEN {RELEASE_CHANNEL}")
            clock.advance(timedelta(days=8))
            batch = service.rotate_due(clock.now(), limit=10)
            made = [f"{r.app_id}:{r.version}" for done in batch.rotated for r in done.releases]
            got = [n.payload for n in conn.notifies(timeout=10, stop_after=len(made))]
        assert len(made) == 6
        assert got == made
    finally:
        store.close()
        drop_pg_database(pg_server, url)


def test_webhook_deliveries_are_queued_for_every_release_of_a_batch(
    store: SqlStore, service: SecureKeyService, clock: FixedClock
) -> None:
    """An app with a webhook gets one pending delivery per release the batch made there."""
    _fleet(service)
    hooks = WebhookService(store, clock)
    hooks.create("app-a", "https://hooks.example.com/hook", ["api:release"])
    clock.advance(timedelta(days=8))
    service.rotate_due(clock.now(), limit=10)
    _, deliveries = hooks.deliveries("app-a")
    bodies = [json.loads(d.payload) for d in deliveries]
    versions = sorted(b["data"]["version"] for b in bodies)
    top = service.get_app("app-a").release
    assert versions == [top - 2, top - 1, top]
    assert all(d.status == "pending" for d in deliveries)


def _fail_key_inserts_for(store: SqlStore, addon_id: str) -> None:
    """A real database trigger that refuses new key versions of one add-on (a write failure)."""
    with store.engine.begin() as conn:
        if store.dialect == "sqlite":
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_keys BEFORE INSERT ON key_versions "
                f"WHEN NEW.addon_id = '{addon_id}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION refuse_keys() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.addon_id = '{addon_id}' THEN RAISE EXCEPTION 'refused'; END IF; "
                "RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_keys BEFORE INSERT ON key_versions "
                "FOR EACH ROW EXECUTE FUNCTION refuse_keys()"
            )


@pytest.mark.parametrize("batch_size", [2, 5, 200])
def test_a_write_failing_mid_batch_rolls_back_that_addon_alone(
    store: SqlStore, service: SecureKeyService, clock: FixedClock, batch_size: int
) -> None:
    """The database refusing one add-on's new key fails that add-on only; the batch goes on."""
    for i in range(7):
        service.create_app(f"app-{i}")
        service.create_addon(f"app-{i}", "securekey:daily", name=f"keys-{i}", period="10s")
    bad = service.get_addon("keys-3")
    _fail_key_inserts_for(store, bad.id)
    before = _rows_of(store, bad.id)
    scheduler = Scheduler(service, clock, batch_size=batch_size)
    clock.advance(timedelta(seconds=10))
    result = scheduler.tick()
    assert result.failed == [bad.id]
    assert sorted(r.addon.name for r in result.rotated) == [f"keys-{i}" for i in range(7) if i != 3]
    assert _rows_of(store, bad.id) == before
    assert [r.version for r in service.releases("app-3")] == [1, 2]
    failures = service.audit_events(action="addon.rotate_failed")
    assert [(e.target_id, e.actor) for e in failures] == [(bad.id, "scheduler")]
    assert service.audit_events(action="addon.rotate", target_id=bad.id) == []
    assert (scheduler.failures, scheduler.rotations) == (1, 6)


def test_rotate_matching_by_plan_app_and_all(service: SecureKeyService, clock: FixedClock) -> None:
    """Each filter rotates exactly its add-ons now, whether due or not; the rest stay."""
    _fleet(service)
    start = _pairs(service)
    daily = service.rotate_matching(plan="securekey:daily", batch_size=1)
    assert (daily.matched, daily.rotated, daily.failed, daily.next_after) == (2, 2, [], None)
    assert {service.get_addon(n).key_version for n in ("keys-0", "keys-2")} == {3}
    assert {service.get_addon(n).key_version for n in ("keys-1", "keys-3")} == {2}
    # app-c bills keys-3 and holds nothing else; app-a holds keys-0, keys-1 and keys-3.
    on_c = service.rotate_matching(app="app-c")
    assert (on_c.matched, on_c.rotated, on_c.releases) == (1, 1, 2)
    on_a = service.rotate_matching(app="app-a", batch_size=2)
    assert (on_a.matched, on_a.rotated) == (3, 3)
    everything = service.rotate_matching(all_=True, batch_size=3)
    assert (everything.matched, everything.rotated) == (4, 4)
    versions = {
        n: service.get_addon(n).key_version for n in ("keys-0", "keys-1", "keys-2", "keys-3")
    }
    assert versions == {"keys-0": 5, "keys-1": 4, "keys-2": 4, "keys-3": 5}
    assert {e.actor for e in service.audit_events(action="addon.rotate")} == {"operator"}
    assert all(
        start[k] != v for k, v in _pairs(service).items() if k in start and k.endswith("_KEY")
    )


def test_rotate_matching_emergency_replaces_both_keys(service: SecureKeyService) -> None:
    """An emergency by filter revokes both keys of every matching add-on at once."""
    _fleet(service)
    old = {
        n: parse_pair(service.config_vars("app-b")[v])
        for n, v in (("keys-0", "SHARED_KEY"), ("keys-2", "K2_KEY"))
    }
    done = service.rotate_matching(app="app-b", emergency=True)
    assert (done.matched, done.rotated) == (2, 2)
    for name, var in (("keys-0", "SHARED_KEY"), ("keys-2", "K2_KEY")):
        new = parse_pair(service.config_vars("app-b")[var])
        assert {new.latest, new.previous}.isdisjoint({old[name].latest, old[name].previous})
    assert len(service.audit_events(action="addon.rotate_emergency")) == 2


def test_rotate_matching_pages_with_a_cursor_and_counts_first(service: SecureKeyService) -> None:
    """``limit`` stops early with a cursor; following it rotates each add-on exactly once."""
    _fleet(service)
    assert service.rotate_matching(all_=True, dry_run=True).matched == 4
    assert service.audit_events(action="addon.rotate") == []
    seen = 0
    after = None
    for _ in range(10):
        page = service.rotate_matching(all_=True, limit=3, after=after, batch_size=2)
        seen += page.rotated
        after = page.next_after
        if after is None:
            break
    assert seen == 4
    assert {a.key_version for a in service.list_addons()} == {3}


@pytest.mark.parametrize(
    ("given", "error"),
    [
        ({}, ValidationError),
        ({"all_": True, "plan": "securekey:daily"}, ValidationError),
        ({"plan": "securekey:hourly"}, ValidationError),
        ({"plan": "securekey:daily", "app": "app-a"}, ValidationError),
        ({"app": "no-such-app"}, NotFoundError),
        ({"all_": True, "batch_size": 0}, ValidationError),
        ({"all_": True, "batch_size": 100_000}, ValidationError),
        ({"all_": True, "limit": -1}, ValidationError),
        ({"all_": True, "after": "x\x00"}, ValidationError),
        ({"all_": "yes"}, ValidationError),
    ],
)
def test_rotate_matching_refuses_bad_filters_and_changes_nothing(
    store: SqlStore,
    service: SecureKeyService,
    given: dict[str, object],
    error: type[SecureKeyError],
) -> None:
    """A missing, doubled or unknown filter is a clear error and nothing changes."""
    _fleet(service)
    before = snapshot(store)
    with pytest.raises(error) as info:
        service.rotate_matching(**given)  # type: ignore[arg-type]
    assert info.value.message
    assert snapshot(store) == before


def test_the_claim_takes_a_batch_soonest_first(
    store: SqlStore, service: SecureKeyService, clock: FixedClock
) -> None:
    """With more due than the batch holds, the soonest due go first and the rest wait."""
    for i in range(5):
        service.create_app(f"app-{i}")
        service.create_addon(f"app-{i}", "securekey:daily", name=f"keys-{i}", period=f"{10 + i}s")
    clock.advance(timedelta(seconds=20))
    first = service.rotate_due(clock.now(), limit=3)
    assert [r.addon.name for r in first.rotated] == ["keys-0", "keys-1", "keys-2"]
    rest = service.rotate_due(clock.now(), limit=3)
    assert (rest.claimed, [r.addon.name for r in rest.rotated]) == (2, ["keys-3", "keys-4"])
    with store.engine.connect() as conn:
        due = conn.execute(sa.text("SELECT count(*) FROM addons WHERE key_version = 3")).scalar()
    assert due == 5


def test_a_scheduler_leaves_addons_of_a_busy_app_for_later_instead_of_waiting(
    pg_server: pg.PgServer, cipher: Cipher, clock: FixedClock
) -> None:
    """On PostgreSQL an app row held by another transaction defers its add-ons; no waiting."""
    url = new_pg_database(pg_server)
    store = SqlStore.open(url, cipher)
    try:
        service = SecureKeyService(store, cipher, clock)
        for app in ("busy", "free"):
            service.create_app(app)
            service.create_addon(app, "securekey:daily", name=f"keys-{app}", period="10s")
        busy = service.get_app("busy")
        clock.advance(timedelta(seconds=10))
        with store.engine.connect() as holder, holder.begin():
            holder.execute(sa.select(t.apps).where(t.apps.c.id == busy.id).with_for_update())
            batch = service.rotate_due(clock.now(), limit=10)
            assert batch.claimed == 2
            assert [r.addon.name for r in batch.rotated] == ["keys-free"]
            assert batch.failed == []
        assert service.get_addon("keys-busy").key_version == 2
        assert service.has_due(clock.now())
        later = service.rotate_due(clock.now(), limit=10)
        assert [r.addon.name for r in later.rotated] == ["keys-busy"]
        assert [r.version for r in service.releases("busy")] == [1, 2, 3]
    finally:
        store.close()
        drop_pg_database(pg_server, url)
