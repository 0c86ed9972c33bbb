"""`securekey master-key rotate`: online, resumable, and the old key opens nothing afterwards.

A real server keeps serving (and its scheduler keeps rotating an add-on) while the command
re-encrypts everything in small batches; the first run is cut short, the second resumes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from securekey.crypto import Cipher, MasterKey
from securekey.exceptions import DecryptionError
from securekey.store import make_engine, sqlite_url
from securekey.store import tables as t
from securekey.store.master_keys import ENCRYPTED, census
from tests import pg
from tests.conftest import drop_pg_database, new_pg_database
from tests.e2e._ops import add_webhook, cli, pairs, populate
from tests.e2e.test_startup import assert_one_clear_line, start_failing
from tests.servers import running_server
from tests.support import wait_until

pytestmark = pytest.mark.slow


def _blobs(db_url: str) -> list[tuple[str, object, bytes]]:
    engine = make_engine(db_url)
    found = []
    try:
        with engine.connect() as conn:
            for col in ENCRYPTED:
                c = col.table.c
                query = sa.select(*(c[k] for k in col.key), c[col.column].label("blob"))
                for row in conn.execute(query.where(c[col.column].is_not(None))):
                    found.append((col.label, row, row.blob))
    finally:
        engine.dispose()
    return found


def test_master_key_rotation_online_resumable_and_old_key_retired(tmp_path: Path) -> None:
    """Every add-on serves the same pair after rotation; the old key opens nothing, fails start."""
    data = tmp_path / "data"
    db_url = sqlite_url(data / "securekey.db")
    with running_server(data) as server, server.client() as http:
        made = populate(http, period="5s")
        old = MasterKey.from_file(data / "master.key")
        add_webhook(db_url, Cipher(old), "service-1")
        steady = {k: v for k, v in pairs(http).items() if not k.startswith("service-3")}
        engine = make_engine(db_url)
        try:
            before = census(engine)
            assert set(before) == {old.key_id}
            # First run: cut short after 2 batches of 2 values.
            first = cli("master-key", "rotate", "--data-dir", data, "--batch-size", "2",
                        "--max-batches", "2")  # fmt: skip
            assert first.returncode == 0, first.stderr
            assert "run the same command again" in first.stderr
            mid = census(engine)
            new_id = next(k for k in mid if k != old.key_id)
            print("after the interrupted run:", mid)
            assert mid.get(old.key_id, 0) > 0
            assert mid[new_id] >= 4
            # The server keeps serving, with both keys, and writes under the new one.
            assert {k: v for k, v in pairs(http).items() if not k.startswith("service-3")} == steady
            rotated = http.post(f"/addons/{made.addons[1]}/actions/rotate", json={})
            assert rotated.status_code == 200
            steady = {k: v for k, v in pairs(http).items() if not k.startswith("service-3")}
            # Second run: resumes and finishes.
            second = cli("master-key", "rotate", "--data-dir", data, "--batch-size", "3")
            assert second.returncode == 0, second.stderr
            assert "Done" in second.stderr, second.stderr
            after = census(engine)
            print("after the resumed run:", after)
            assert set(after) == {new_id}
        finally:
            engine.dispose()
        version_before = http.get(f"/addons/{made.addons[2]}").json()["securekey"]["key_version"]
        assert {k: v for k, v in pairs(http).items() if not k.startswith("service-3")} == steady
        assert http.get("/apps/service-1/config-vars").json()["DATABASE_PASSWORD"] == "hunter2"
        # The scheduler kept rotating service-3's add-on throughout (5 s period).
        wait_until(
            lambda: (
                http.get(f"/addons/{made.addons[2]}").json()["securekey"]["key_version"]
                > version_before
            ),
            30,
            "a scheduled rotation of service-3's add-on",
            interval=0.5,
        )
        hooks = http.get("/apps/service-1/webhooks")
        assert hooks.status_code == 200
        assert len(hooks.json()) == 1
        consumer = http.get(
            "/apps/service-2/config-vars", headers={"Authorization": f"Bearer {made.app_token}"}
        )
        assert consumer.status_code == 200
    new = MasterKey.from_file(data / "master.key")
    assert new.key_id == new_id
    assert not (data / "master.key.new").exists()
    # The old key opens nothing: not one stored value, not the check values.
    blobs = _blobs(db_url)
    assert blobs
    for label, row, blob in blobs:
        col = next(c for c in ENCRYPTED if c.label == label)
        with pytest.raises(DecryptionError):
            Cipher(old).decrypt(blob, col.aad(row))
        assert Cipher(new).decrypt(blob, col.aad(row))
    engine = make_engine(db_url)
    with engine.connect() as conn:
        rows = {r.key_id: r for r in conn.execute(sa.select(t.master_keys))}
    engine.dispose()
    assert rows[old.key_id].state == "retired"
    assert rows[old.key_id].check_enc is None
    assert rows[old.key_id].wrapped_enc is None
    assert rows[new_id].state == "active"
    assert rows[new_id].wrapped_enc is None
    # The old key alone cannot start a server any more; the new one serves the same pairs.
    code, stderr = start_failing(["--data-dir", str(data), "--port", "0"], _env_with_key(old))
    assert_one_clear_line(code, stderr, "retired", new_id)
    with running_server(data) as server, server.client() as http:
        assert {k: v for k, v in pairs(http).items() if not k.startswith("service-3")} == steady


def _env_with_key(key: MasterKey) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("SECUREKEY_")}
    env["SECUREKEY_MASTER_KEY"] = key.to_base64()
    return env


def test_rotation_refuses_without_the_current_key(tmp_path: Path) -> None:
    """Rotating with a current key that is not the database's changes nothing and says why."""
    data = tmp_path / "data"
    with running_server(data) as server, server.client() as http:
        populate(http)
    engine = make_engine(sqlite_url(data / "securekey.db"))
    try:
        before = census(engine)
        wrong = MasterKey.generate()
        result = cli(
            "master-key", "rotate", "--data-dir", data,
            env={"SECUREKEY_MASTER_KEY": wrong.to_base64(),
                 "SECUREKEY_NEW_MASTER_KEY": MasterKey.generate().to_base64()},
        )  # fmt: skip
        assert result.returncode != 0
        assert "is needed to rotate" in result.stderr
        assert "Traceback" not in result.stderr
        assert census(engine) == before
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_master_key_rotation_on_postgres_with_two_replicas(
    tmp_path: Path, pg_server: pg.PgServer
) -> None:
    """Two replicas holding only the old key keep serving through a rotation, then the new key."""
    db_url = new_pg_database(pg_server)
    old, new = MasterKey.generate(), MasterKey.generate()
    try:
        with (
            running_server(tmp_path / "a", database_url=db_url, master_key=old.to_base64()) as a,
            running_server(
                tmp_path / "b", database_url=db_url, master_key=old.to_base64(), token=a.token
            ) as b,
            a.client() as http_a,
            b.client() as http_b,
        ):
            made = populate(http_a)
            add_webhook(db_url, Cipher(old), "service-1")
            before = pairs(http_b)
            env = {"SECUREKEY_MASTER_KEY": old.to_base64(),
                   "SECUREKEY_NEW_MASTER_KEY": new.to_base64()}  # fmt: skip
            first = cli("master-key", "rotate", "--database-url", db_url, "--batch-size", "1",
                        "--max-batches", "3", env=env)  # fmt: skip
            assert first.returncode == 0, first.stderr
            assert pairs(http_a) == before
            assert pairs(http_b) == before
            # A change through replica B mid-rotation is written under the new key.
            assert http_b.post(f"/addons/{made.addons[1]}/actions/rotate", json={}).is_success
            expected = pairs(http_a)
            second = cli("master-key", "rotate", "--database-url", db_url, env=env)
            assert second.returncode == 0, second.stderr
            assert "Done" in second.stderr
            assert pairs(http_a) == expected
            assert pairs(http_b) == expected
            engine = make_engine(db_url)
            try:
                assert set(census(engine)) == {new.key_id}
            finally:
                engine.dispose()
        code, stderr = start_failing(["--database-url", db_url], _env_with_key(old))
        assert_one_clear_line(code, stderr, "retired", new.key_id)
        with (
            running_server(tmp_path / "c", database_url=db_url, master_key=new.to_base64()) as c,
            c.client() as http,
        ):
            assert pairs(http) == expected
    finally:
        drop_pg_database(pg_server, db_url)


def test_a_rotation_stopped_before_replacing_master_key_is_finished_by_a_rerun(
    tmp_path: Path,
) -> None:
    """A run that died after retiring the old key, before swapping master.key: a rerun ends it."""
    from securekey.config import Settings
    from securekey.runtime import open_runtime

    data = tmp_path / "data"
    runtime = open_runtime(Settings(data_dir=data))
    runtime.service.create_app("service-1")
    runtime.service.create_addon("service-1", "securekey:daily")
    runtime.close()
    old = MasterKey.from_file(data / "master.key")
    done = cli("master-key", "rotate", "--data-dir", data)
    assert done.returncode == 0, done.stderr
    new = MasterKey.from_file(data / "master.key")
    assert new.key_id != old.key_id
    # The state a crash between the final commit and the key-file swap leaves behind.
    (data / "master.key.new").write_text(new.to_base64() + "\n")
    (data / "master.key").write_text(old.to_base64() + "\n")
    again = cli("master-key", "rotate", "--data-dir", data)
    assert again.returncode == 0, again.stderr
    assert "already under master key" in again.stderr
    assert MasterKey.from_file(data / "master.key").key_id == new.key_id
    assert not (data / "master.key.new").exists()
    status = cli("master-key", "status", "--data-dir", data)
    assert status.returncode == 0, status.stderr
    assert f"{new.key_id}  active" in status.stdout
    assert f"{old.key_id}  retired  0 values" in status.stdout
