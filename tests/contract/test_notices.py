"""Store notices (``store.notices``): releases, token revocations and lost notices, told to
listeners after the commit, in this process and (PostgreSQL) in every other one."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import psycopg
import pytest

from securekey.crypto import Cipher
from securekey.domain.clock import FixedClock
from securekey.services import ReleaseNotice, SecureKeyService
from securekey.services.ports import IDENTITY_CHANGED, NOTICES_LOST, TOKEN_REVOKED
from securekey.services.tokens import TokenService
from securekey.store import SqlStore
from securekey.store.notices import RELEASE_CHANNEL, decode, encode
from tests import pg
from tests.conftest import drop_pg_database, new_pg_database


class Heard:
    """A listener that keeps every notice it is told, flattened, in order."""

    def __init__(self) -> None:
        self.calls: list[list[ReleaseNotice]] = []

    def __call__(self, notices: Sequence[ReleaseNotice]) -> None:
        self.calls.append(list(notices))

    @property
    def notices(self) -> list[ReleaseNotice]:
        return [n for call in list(self.calls) for n in call]

    def within(self, notice: ReleaseNotice, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while notice not in self.notices:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def wait_for(self, found: Callable[[ReleaseNotice], bool], what: str) -> None:
        deadline = time.monotonic() + 20
        while not any(found(n) for n in self.notices):
            assert time.monotonic() < deadline, f"never heard {what}: {self.notices}"
            time.sleep(0.02)


def test_payloads_round_trip_and_anything_else_is_ignored() -> None:
    """Every kind of notice survives its NOTIFY payload; malformed payloads are dropped."""
    for notice in (
        ReleaseNotice("0b6c7a1e-app", 7),
        ReleaseNotice("0b6c7a1e-app", IDENTITY_CHANGED),
        ReleaseNotice("0b6c7a1e-token", TOKEN_REVOKED),
    ):
        assert decode(encode(notice)) == notice
    for junk in ("", "app", ":5", "app:", "app:x", "app:1.5", "app:--1", "app:\u0663", "a:1 "):
        assert decode(junk) is None, junk


def test_revoked_and_deleted_tokens_are_announced_after_the_commit(
    store: SqlStore, service: SecureKeyService, cipher: Cipher, clock: FixedClock
) -> None:
    """Deleting an app token and revoking an operator token each tell listeners its id, so
    open streams can end without asking the database."""
    service.create_app("notice-app")
    tokens = TokenService(store, cipher, clock)
    app_token, _ = tokens.create_app_token("notice-app")
    operator_token, _ = tokens.create_operator_token()
    tokens.create_operator_token()  # the last one may not be revoked
    heard = Heard()
    store.add_listener(heard)
    tokens.revoke_app_token("notice-app", app_token.id)
    tokens.revoke_operator_token(operator_token.id)
    assert heard.notices == [
        ReleaseNotice(app_token.id, TOKEN_REVOKED),
        ReleaseNotice(operator_token.id, TOKEN_REVOKED),
    ]


def test_a_rolled_back_revocation_is_never_announced(
    store: SqlStore, service: SecureKeyService, cipher: Cipher, clock: FixedClock
) -> None:
    """A revocation whose transaction fails is not heard: the token still works."""
    service.create_app("notice-app")
    token, _ = TokenService(store, cipher, clock).create_app_token("notice-app")
    heard = Heard()
    store.add_listener(heard)
    with pytest.raises(RuntimeError, match="abandon"):
        _revoke_then_fail(store, token.id)
    assert heard.notices == []


def _revoke_then_fail(store: SqlStore, token_id: str) -> None:
    with store.transaction() as tx:
        tx.delete_token(token_id)
        raise RuntimeError("abandon")


def test_sqlite_listen_is_in_process_only(
    tmp_path: pytest.TempPathFactory, cipher: Cipher, clock: FixedClock
) -> None:
    """On SQLite ``listen`` opens no connection and says yes; the store's own commits are heard."""
    store = SqlStore.open(f"sqlite:///{tmp_path}/notices.db", cipher)
    try:
        heard = Heard()
        store.add_listener(heard)
        assert store.listen(0.0) is True
        app = SecureKeyService(store, cipher, clock).create_app("notice-app")
        assert ReleaseNotice(app.id, 1) in heard.notices
    finally:
        store.close()


def test_postgres_replicas_hear_each_other_and_a_lost_listen_says_so(
    pg_server: pg.PgServer, cipher: Cipher, clock: FixedClock
) -> None:
    """A second store on the same database hears the first's releases and revocations through
    one LISTEN connection; when that connection is cut it is told notices may have been lost,
    reconnects by itself, and hears the next release."""
    url = new_pg_database(pg_server)
    writer, reader = SqlStore.open(url, cipher), SqlStore.open(url, cipher, migrate=False)
    try:
        heard = Heard()
        reader.add_listener(heard)
        assert reader.listen(10.0) is True
        assert reader.listen(10.0) is True  # idempotent: still one connection
        service = SecureKeyService(writer, cipher, clock)
        app = service.create_app("notice-app")
        token, _ = TokenService(writer, cipher, clock).create_app_token("notice-app")
        TokenService(writer, cipher, clock).revoke_app_token("notice-app", token.id)
        heard.wait_for(lambda n: n == ReleaseNotice(app.id, 1), "the release")
        heard.wait_for(lambda n: n == ReleaseNotice(token.id, TOKEN_REVOKED), "the revocation")
        dsn = writer.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(dsn, autocommit=True) as admin:
            listeners = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = %s",
                (f"LISTEN {RELEASE_CHANNEL}",),
            ).fetchall()
        assert len(listeners) == 1, listeners
        heard.wait_for(lambda n: n.version == NOTICES_LOST, "that notices may have been lost")
        # Reconnected (with back-off): a release made from now on is heard again.
        deadline = time.monotonic() + 30
        while True:
            release = service.set_config("notice-app", {"PLAIN": str(time.monotonic())})
            assert release is not None
            if heard.within(ReleaseNotice(app.id, release.version), 1.0):
                break
            assert time.monotonic() < deadline, heard.notices
    finally:
        reader.close()
        writer.close()
        drop_pg_database(pg_server, url)
