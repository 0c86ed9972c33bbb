"""`securekey backup` / `restore`: online, encrypted, atomic 0600 files that round-trip.

Each backend's backup restores into a fresh database (SQLite → SQLite, PostgreSQL → PostgreSQL,
SQLite → PostgreSQL), and the restored server serves the same pairs, schedules, releases, tokens
and webhooks. Wrong master keys and non-empty targets are refused and change nothing.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from securekey.crypto import Cipher, MasterKey
from securekey.store import make_engine, sqlite_url
from securekey.store.master_keys import has_data
from tests import pg
from tests.conftest import drop_pg_database, new_pg_database
from tests.e2e._ops import add_webhook, cli, populate, state
from tests.servers import running_server

pytestmark = pytest.mark.slow

KEY = MasterKey.generate()
KEY_ENV = {"SECUREKEY_MASTER_KEY": KEY.to_base64()}
SECRETS = ("hunter2", "whsec-0123456789abcdef", "receiver-secret-123")


@pytest.fixture
def pg_db(pg_server: pg.PgServer) -> Iterator[str]:
    """A fresh, empty PostgreSQL database."""
    url = new_pg_database(pg_server)
    yield url
    drop_pg_database(pg_server, url)


@pytest.fixture
def pg_db2(pg_server: pg.PgServer) -> Iterator[str]:
    """A second fresh, empty PostgreSQL database."""
    url = new_pg_database(pg_server)
    yield url
    drop_pg_database(pg_server, url)


def _source(tmp: Path, database_url: str | None) -> tuple[dict[str, object], list[str], str]:
    """Populate a real server; back it up while it runs. Its state, backup args, token."""
    data = tmp / "source"
    db_url = database_url or sqlite_url(data / "securekey.db")
    with running_server(data, database_url=database_url, master_key=KEY.to_base64()) as server:
        with server.client() as http:
            populate(http)
            add_webhook(db_url, Cipher(KEY), "service-1")
            before = state(http)
        where = ["--database-url", database_url] if database_url else ["--data-dir", str(data)]
        backup_file = tmp / "backups" / "securekey.backup"
        backup_file.parent.mkdir()
        made = cli("backup", backup_file, *where, env=KEY_ENV)
        assert made.returncode == 0, made.stderr
        print(made.stderr.strip())
    return before, [str(backup_file)], server.token


def _assert_private_and_encrypted(backup_file: Path) -> None:
    assert stat.S_IMODE(backup_file.stat().st_mode) == 0o600
    raw = backup_file.read_bytes()
    for secret in SECRETS:
        assert secret.encode() not in raw
    assert not [p for p in backup_file.parent.iterdir() if p.name.endswith(".tmp")]


def _restored_state(tmp: Path, backup_file: str, database_url: str | None, token: str) -> object:
    data = tmp / "restored"
    where = ["--database-url", database_url] if database_url else ["--data-dir", str(data)]
    done = cli("restore", backup_file, *where, env=KEY_ENV)
    assert done.returncode == 0, done.stderr
    print(done.stderr.strip())
    with (
        running_server(
            data, database_url=database_url, master_key=KEY.to_base64(), token=token
        ) as server,
        server.client() as http,
    ):
        return state(http)


@pytest.mark.parametrize(
    ("source", "target"),
    [("sqlite", "sqlite"), ("postgres", "postgres"), ("sqlite", "postgres")],
    ids=["sqlite-to-sqlite", "postgres-to-postgres", "sqlite-to-postgres"],
)
def test_backup_restore_round_trip(
    source: str, target: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The restored server serves the same pairs, schedules, releases, tokens and webhooks."""
    source_url = request.getfixturevalue("pg_db") if source == "postgres" else None
    target_url = request.getfixturevalue("pg_db2") if target == "postgres" else None
    before, (backup_file,), token = _source(tmp_path, source_url)
    _assert_private_and_encrypted(Path(backup_file))
    after = _restored_state(tmp_path, backup_file, target_url, token)
    assert after == before
    pairs = {k: v for k, v in before.items() if k.endswith("/config")}
    print(f"{source} -> {target}: {len(pairs)} apps' config equal after restore")


def test_restore_refuses_a_wrong_master_key_and_a_non_empty_database(tmp_path: Path) -> None:
    """A key that does not open the backup, or a database holding data, is refused unchanged."""
    _before, (backup_file,), _token = _source(tmp_path, None)
    target = tmp_path / "target"
    wrong = cli(
        "restore", backup_file, "--data-dir", target,
        env={"SECUREKEY_MASTER_KEY": MasterKey.generate().to_base64()},
    )  # fmt: skip
    assert wrong.returncode != 0
    assert "does not open this backup" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    engine = make_engine(sqlite_url(target / "securekey.db"))
    with engine.connect() as conn:
        assert not has_data(conn)
    engine.dispose()
    # Into the source's own (non-empty) database: refused.
    again = cli("restore", backup_file, "--data-dir", tmp_path / "source", env=KEY_ENV)
    assert again.returncode != 0
    assert "not empty" in again.stderr
    # A truncated JSON-lines backup is refused too.
    jsonl = tmp_path / "backups" / "cut.jsonl"
    made = cli("backup", jsonl, "--jsonl", "--data-dir", tmp_path / "source", env=KEY_ENV)
    assert made.returncode == 0, made.stderr
    lines = jsonl.read_text().splitlines()
    jsonl.write_text("\n".join(lines[:-3]) + "\n")
    cut = cli("restore", jsonl, "--data-dir", tmp_path / "other", env=KEY_ENV)
    assert cut.returncode != 0
    assert "incomplete" in cut.stderr


def test_backup_does_not_replace_the_target_until_complete(tmp_path: Path) -> None:
    """A backup to an unwritable place fails cleanly and leaves an existing file untouched."""
    _before, (backup_file,), _token = _source(tmp_path, None)
    previous = Path(backup_file).read_bytes()
    result = cli("backup", tmp_path / "nowhere" / "x.db", "--data-dir", tmp_path / "source")
    assert result.returncode != 0
    assert "does not exist" in result.stderr
    assert Path(backup_file).read_bytes() == previous
