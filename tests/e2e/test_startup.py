"""Starting `securekey server`: private file modes, the master-key check, and operator errors.

Each failure case starts the real server as a subprocess and expects a non-zero exit with one
line saying what to do: never a traceback, never "this is a bug".
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from securekey.config import Settings
from securekey.crypto import MasterKey
from securekey.runtime import open_runtime
from tests import pg
from tests.conftest import drop_pg_database, new_pg_database
from tests.servers import running_server
from tests.support import wait_ready

pytestmark = pytest.mark.slow


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECUREKEY_")}
    env.update(extra or {})
    return env


def start_failing(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run `securekey server ARGS` expecting it to exit by itself; its code and stderr."""
    cmd = [sys.executable, "-m", "securekey", "server", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stderr


def assert_one_clear_line(code: int, stderr: str, *expected: str) -> None:
    """Non-zero exit, exactly one error line holding ``expected``, no traceback, not a 'bug'."""
    print(f"exit {code}: {stderr.strip().splitlines()[-1] if stderr.strip() else ''}")
    assert code != 0
    assert "Traceback" not in stderr
    assert "is a bug" not in stderr.lower()
    errors = [line for line in stderr.splitlines() if line.startswith(" ▸")]
    assert len(errors) == 1, stderr
    for text in expected:
        assert text in errors[0], errors[0]


def _populate(settings: Settings) -> None:
    """An app with an add-on and a config var, written through the real store."""
    runtime = open_runtime(settings)
    try:
        runtime.service.create_app("service-1")
        runtime.service.create_addon("service-1", "securekey:daily")
        runtime.service.set_config("service-1", {"DATABASE_PASSWORD": "hunter2"})
    finally:
        runtime.close()


def test_data_directory_the_server_creates_is_private(tmp_path: Path) -> None:
    """A data directory the server creates is 0700; database, WAL, SHM and key file are 0600."""
    data_dir = tmp_path / "fresh" / "data"
    assert not data_dir.parent.exists()
    with _server_on_new_dir(data_dir) as base_url:
        token_headers = {"Authorization": "Bearer sko_test_modes_0123456789abcdef"}
        with httpx.Client(base_url=base_url, headers=token_headers, timeout=30) as http:
            assert http.post("/apps", json={"name": "service-1"}).status_code == 201
            created = http.post(
                "/apps/service-1/addons", json={"plan": {"name": "securekey:daily"}}
            )
            assert created.status_code == 201
            assert http.get("/apps/service-1/config-vars").status_code == 200
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in data_dir.iterdir()}
        modes["<data dir>"] = stat.S_IMODE(data_dir.stat().st_mode)
        print("modes:", {k: oct(v) for k, v in sorted(modes.items())})
        assert modes["<data dir>"] == 0o700
        for name in ("securekey.db", "securekey.db-wal", "securekey.db-shm", "master.key"):
            assert modes[name] == 0o600, (name, oct(modes[name]))
        assert all(mode & 0o077 == 0 for mode in modes.values())


class _server_on_new_dir:
    """`securekey server --data-dir NEW` where NEW does not exist yet; yields its base URL."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = pg.free_port()
        self.log = data_dir.parent.parent / "server.log"

    def __enter__(self) -> str:
        env = _env({"SECUREKEY_OPERATOR_TOKEN": "sko_test_modes_0123456789abcdef"})
        cmd = [sys.executable, "-m", "securekey", "server", "--port", str(self.port)]
        cmd += ["--data-dir", str(self.data_dir)]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{self.port}"
        wait_ready(url, self.proc, self.log.read_text, 60)
        return url

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(20)


@dataclass
class Case:
    """One start-up mistake: how to set it up, and what the one error line must say."""

    name: str
    setup: Callable[[Path, pytest.FixtureRequest], tuple[list[str], dict[str, str]]]
    expected: tuple[str, ...]


def _embedded_with_data(tmp: Path) -> tuple[Path, MasterKey]:
    data = tmp / "data"
    _populate(Settings(data_dir=data))
    return data, MasterKey.from_file(data / "master.key")


def _missing_key_file(tmp: Path, _r: pytest.FixtureRequest) -> tuple[list[str], dict[str, str]]:
    data, _key = _embedded_with_data(tmp)
    (data / "master.key").unlink()
    return ["--data-dir", str(data)], _env()


def _wrong_key_sqlite(tmp: Path, _r: pytest.FixtureRequest) -> tuple[list[str], dict[str, str]]:
    data, _key = _embedded_with_data(tmp)
    return ["--data-dir", str(data)], _env(
        {"SECUREKEY_MASTER_KEY": MasterKey.generate().to_base64()}
    )


def _pg_database(request: pytest.FixtureRequest) -> str:
    server: pg.PgServer = request.getfixturevalue("pg_server")
    url = new_pg_database(server)
    request.addfinalizer(lambda: drop_pg_database(server, url))
    return url


def _pg_no_key(tmp: Path, request: pytest.FixtureRequest) -> tuple[list[str], dict[str, str]]:
    url = _pg_database(request)
    _populate(Settings(data_dir=tmp, database_url=url, master_key_b64=_KEY.to_base64()))
    return ["--data-dir", str(tmp / "data"), "--database-url", url], _env()


def _pg_wrong_key(tmp: Path, request: pytest.FixtureRequest) -> tuple[list[str], dict[str, str]]:
    url = _pg_database(request)
    _populate(Settings(data_dir=tmp, database_url=url, master_key_b64=_KEY.to_base64()))
    return ["--database-url", url], _env({"SECUREKEY_MASTER_KEY": MasterKey.generate().to_base64()})


def _pg_unreachable(tmp: Path, _r: pytest.FixtureRequest) -> tuple[list[str], dict[str, str]]:
    url = f"postgresql://postgres@127.0.0.1:{pg.free_port()}/securekey"
    return ["--database-url", url], _env({"SECUREKEY_MASTER_KEY": _KEY.to_base64()})


def _port_taken(tmp: Path, request: pytest.FixtureRequest) -> tuple[list[str], dict[str, str]]:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    request.addfinalizer(holder.close)
    port = holder.getsockname()[1]
    return ["--data-dir", str(tmp / "data"), "--port", str(port)], _env()


def _data_dir_is_a_file(tmp: Path, _r: pytest.FixtureRequest) -> tuple[list[str], dict[str, str]]:
    (tmp / "data").write_text("not a directory")
    return ["--data-dir", str(tmp / "data")], _env()


def _not_a_database(tmp: Path, _r: pytest.FixtureRequest) -> tuple[list[str], dict[str, str]]:
    data = tmp / "data"
    data.mkdir(mode=0o700)
    (data / "securekey.db").write_bytes(b"this is not a SQLite file at all" * 200)
    return ["--data-dir", str(data)], _env()


def _bad_key_text(tmp: Path, _r: pytest.FixtureRequest) -> tuple[list[str], dict[str, str]]:
    return ["--data-dir", str(tmp / "data")], _env({"SECUREKEY_MASTER_KEY": "not base64!"})


def _missing_key_file_var(tmp: Path, _r: pytest.FixtureRequest) -> tuple[list[str], dict[str, str]]:
    return ["--data-dir", str(tmp / "data")], _env(
        {"SECUREKEY_MASTER_KEY_FILE": str(tmp / "nowhere.key")}
    )


def _short_token(tmp: Path, _r: pytest.FixtureRequest) -> tuple[list[str], dict[str, str]]:
    return ["--data-dir", str(tmp / "data")], _env({"SECUREKEY_OPERATOR_TOKEN": "short"})


def _bad_log_level(tmp: Path, _r: pytest.FixtureRequest) -> tuple[list[str], dict[str, str]]:
    return ["--data-dir", str(tmp / "data"), "--log-level", "loud"], _env()


_KEY = MasterKey.generate()

CASES = [
    Case("missing-key-file", _missing_key_file, ("master.key is missing", "restore it")),
    Case("wrong-key-sqlite", _wrong_key_sqlite, ("is not this database's", "start with")),
    Case("postgres-without-key", _pg_no_key, ("needs a master key", "SECUREKEY_MASTER_KEY")),
    Case("wrong-key-postgres", _pg_wrong_key, ("is not this database's", "start with")),
    Case("database-unreachable", _pg_unreachable, ("Cannot reach the database", "running")),
    Case("port-taken", _port_taken, ("already in use", "--port")),
    Case("data-dir-is-a-file", _data_dir_is_a_file, ("is not a directory", "--data-dir")),
    Case("not-a-database", _not_a_database, ("Cannot open the SQLite database", "--data-dir")),
    Case("bad-master-key-text", _bad_key_text, ("not valid base64", "openssl rand")),
    Case("key-file-unreadable", _missing_key_file_var, ("Cannot read the master key file",)),
    Case("operator-token-too-short", _short_token, ("SECUREKEY_OPERATOR_TOKEN must be",)),
    Case("bad-log-level", _bad_log_level, ("--log-level must be", "not 'loud'")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_operator_errors_exit_with_one_clear_line(
    case: Case, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Each configuration mistake exits non-zero with one line saying what to do, no traceback."""
    args, env = case.setup(tmp_path, request)
    code, stderr = start_failing(args, env)
    assert_one_clear_line(code, stderr, *case.expected)


def test_missing_key_file_is_never_replaced(tmp_path: Path) -> None:
    """Refusing to start over a missing key file leaves no new key file behind to trip on later."""
    args, env = _missing_key_file(tmp_path, None)  # type: ignore[arg-type]
    code, _stderr = start_failing(args, env)
    assert code != 0
    assert not (tmp_path / "data" / "master.key").exists()
    code, stderr = start_failing(args, env)
    assert "master.key is missing" in stderr


def test_restored_key_file_starts_again(tmp_path: Path) -> None:
    """With its own master key back in place the same database starts and serves its add-on."""
    data, key = _embedded_with_data(tmp_path)
    (data / "master.key").unlink()
    code, _stderr = start_failing(["--data-dir", str(data)], _env())
    assert code != 0
    (data / "master.key").write_text(key.to_base64() + "\n")
    with running_server(data) as server, server.client() as http:
        config = http.get("/apps/service-1/config-vars")
        assert config.status_code == 200
        assert config.json()["DATABASE_PASSWORD"] == "hunter2"
