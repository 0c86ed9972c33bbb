"""Exactly-once rotation with several scheduler processes on one database.

Add-ons are seeded through the real ``SqlRepository`` (the same inserts and AES-GCM encryption as
the service, minus per-creation releases and audit events) in a few transactions: through the
service one at a time, 2,000 add-ons cost over a minute on a loaded 2-core machine. The rotations
under test all go through ``Scheduler`` and ``SecureKeyService`` in separate OS processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from securekey.crypto import Cipher, MasterKey
from securekey.domain.clock import FixedClock
from securekey.domain.keys import KeyPair
from securekey.domain.models import Addon, App, Attachment, Release, new_id
from securekey.services import SecureKeyService
from securekey.store import SqlStore
from securekey.store import tables as t
from tests import pg
from tests.conftest import new_pg_database

ROOT = Path(__file__).resolve().parents[2]
PERIOD = timedelta(seconds=10)
BATCH = 250

pytestmark = pytest.mark.slow


def seed(store: SqlStore, clock: FixedClock, apps: int, per_app: int) -> list[str]:
    """``apps`` apps at v1, each holding ``per_app`` due add-ons; returns the add-on ids.

    Add-on k is due k milliseconds after the first, k running across apps first, so workers
    taking them in due order touch different apps rather than queueing on one app's row.
    """
    now = clock.now()
    app_ids = [new_id() for _ in range(apps)]
    with store.transaction() as tx:
        for i, app_id in enumerate(app_ids):
            tx.add_app(App(app_id, f"app-{i}", now, now))
            tx.bump_release(app_id, now)
            tx.add_release(Release(new_id(), app_id, 1, "Initial release", "0" * 16, "seed", now))
    addon_ids = []
    for start in range(0, apps * per_app, BATCH):
        with store.transaction() as tx:
            for k in range(start, min(start + BATCH, apps * per_app)):
                j, i = divmod(k, apps)
                addon = Addon(
                    id=new_id(),
                    name=f"keys-{i}-{j}",
                    app_id=app_ids[i],
                    plan="daily",
                    period=PERIOD,
                    created_at=now,
                    updated_at=now,
                    last_rotated_at=now,
                    next_rotation_at=now + PERIOD + timedelta(milliseconds=k),
                )
                tx.add_addon(addon, KeyPair.fresh())
                tx.add_attachment(Attachment(new_id(), addon.id, app_ids[i], f"K{j}", now, now))
                addon_ids.append(addon.id)
    return addon_ids


def run_workers(url: str, master: MasterKey, clock: FixedClock, count: int) -> list[dict[str, Any]]:
    """Start ``count`` scheduler processes, release them together, and collect their counts."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = os.environ | {"SECUREKEY_MASTER_KEY": master.to_base64(), "PYTHONPATH": path}
    command = [
        sys.executable,
        "-m",
        "tests.contract.scheduler_worker",
        url,
        clock.now().isoformat(),
    ]
    procs = [
        subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                _, err = proc.communicate(timeout=30)
                pytest.fail(f"a scheduler worker did not start:\n{err}")
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def check_each_rotated_once(
    store: SqlStore, service: SecureKeyService, addon_ids: list[str], per_app: int
) -> None:
    """The audit log, key versions and releases all show one rotation per add-on, no more."""
    events = service.audit_events(action="addon.rotate")
    targets = Counter(e.target_id for e in events)
    assert len(events) == len(addon_ids)
    assert set(targets) == set(addon_ids)
    assert max(targets.values()) == 1
    assert service.audit_events(action="addon.rotate_failed") == []
    with store.engine.connect() as conn:
        versions = Counter(v for (v,) in conn.execute(sa.select(t.addons.c.key_version)))
        # Each add-on's history: v1 retired, v2 previous, v3 latest.
        states = Counter(s for (s,) in conn.execute(sa.select(t.key_versions.c.state)))
        release_counts = conn.execute(
            sa.select(
                t.releases.c.app_id, sa.func.count(), sa.func.max(t.releases.c.version)
            ).group_by(t.releases.c.app_id)
        ).all()
        app_versions = dict(conn.execute(sa.select(t.apps.c.id, t.apps.c.release_version)).all())
    assert versions == {3: len(addon_ids)}
    assert states == {
        "latest": len(addon_ids),
        "previous": len(addon_ids),
        "retired": len(addon_ids),
    }
    # Gap-free per app: v1 plus exactly one release per rotation of each of its add-ons.
    assert {(n, top) for _, n, top in release_counts} == {(1 + per_app, 1 + per_app)}
    assert set(app_versions.values()) == {1 + per_app}


def _report(label: str, results: list[dict[str, Any]]) -> None:
    for r in results:
        print(f"{label}: pid {r['pid']} rotated {r['rotated']} in {r['seconds']} s")


def test_three_processes_on_postgres_rotate_2000_addons_exactly_once(
    pg_server: pg.PgServer,
) -> None:
    """Three scheduler processes share 2,000 due add-ons on one PostgreSQL: each rotates once."""
    url, master, clock = new_pg_database(pg_server), MasterKey.generate(), FixedClock()
    cipher = Cipher(master)
    store = SqlStore.open(url, cipher)
    try:
        addon_ids = seed(store, clock, apps=200, per_app=10)
        clock.advance(timedelta(hours=1))
        results = run_workers(url, master, clock, 3)
        _report("postgres", results)
        assert sum(r["rotated"] for r in results) == 2000
        assert all(r["failed"] == 0 for r in results)
        check_each_rotated_once(store, SecureKeyService(store, cipher, clock), addon_ids, 10)
    finally:
        store.close()


def test_two_processes_on_one_sqlite_file_rotate_each_addon_once(tmp_path: Path) -> None:
    """Two scheduler processes on one SQLite file rotate 200 due add-ons, each exactly once."""
    url, master, clock = f"sqlite:///{tmp_path}/securekey.db", MasterKey.generate(), FixedClock()
    cipher = Cipher(master)
    store = SqlStore.open(url, cipher)
    try:
        addon_ids = seed(store, clock, apps=20, per_app=10)
        clock.advance(timedelta(hours=1))
        results = run_workers(url, master, clock, 2)
        _report("sqlite", results)
        assert sum(r["rotated"] for r in results) == 200
        assert all(r["failed"] == 0 for r in results)
        check_each_rotated_once(store, SecureKeyService(store, cipher, clock), addon_ids, 10)
    finally:
        store.close()
