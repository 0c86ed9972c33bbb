"""Shared fixtures: a real PostgreSQL server, a fresh store on each backend, a settable clock."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from securekey.crypto import Cipher, MasterKey
from securekey.domain.clock import FixedClock
from securekey.services import SecureKeyService
from securekey.store import SqlStore, make_engine
from tests import pg

BACKENDS = ["sqlite", "postgres"]
_counter = itertools.count()


def _require_postgres() -> bool:
    """In CI a missing PostgreSQL is a failure, never a skip."""
    return bool(os.environ.get("CI")) or bool(os.environ.get("SECUREKEY_REQUIRE_POSTGRES"))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[pg.PgServer]:
    """One real PostgreSQL server for the whole session."""
    bindir = pg.find_bindir()
    if bindir is None:
        if _require_postgres():
            pytest.fail("PostgreSQL server binaries are missing; .ci/run must install them.")
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    server = pg.start(bindir)
    yield server
    server.stop()


def new_pg_database(server: pg.PgServer) -> str:
    """A fresh, empty database on ``server``; returns its URL."""
    name = f"t_{os.getpid()}_{next(_counter)}"
    admin = make_engine(server.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return server.url(name)


def drop_pg_database(server: pg.PgServer, url: str) -> None:
    """Drop a database made by ``new_pg_database`` (keeps the test server small and fast)."""
    name = url.rsplit("/", 1)[1]
    admin = make_engine(server.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def cipher() -> Cipher:
    """A cipher under a fresh random master key."""
    return Cipher(MasterKey.generate())


@pytest.fixture
def clock() -> FixedClock:
    """A clock that moves only when a test moves it."""
    return FixedClock()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> Iterator[str]:
    """A fresh database URL on each backend: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/securekey.db"
        return
    server: pg.PgServer = request.getfixturevalue("pg_server")
    url = new_pg_database(server)
    yield url
    drop_pg_database(server, url)


@pytest.fixture
def store(db_url: str, cipher: Cipher) -> Iterator[SqlStore]:
    """A migrated store on the backend under test."""
    s = SqlStore.open(db_url, cipher)
    yield s
    s.close()


@pytest.fixture
def service(store: SqlStore, cipher: Cipher, clock: FixedClock) -> SecureKeyService:
    """The service over the store under test, on the test clock."""
    return SecureKeyService(store, cipher, clock)
