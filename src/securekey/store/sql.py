"""The SQL store: one implementation of ``services.ports.Store`` for SQLite and PostgreSQL.

It owns the engine and each transaction: database errors become domain errors, and audit lines
and release notices are told after the commit. The queries are in ``store.repository``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import IntegrityError as DBIntegrityError

from securekey.crypto import Cipher
from securekey.domain.models import AuditEvent
from securekey.exceptions import BusyError, SecureKeyError, UnavailableError
from securekey.services.ports import ReleaseNotice
from securekey.store import tables as t
from securekey.store.aad import TOKEN_DIGEST_SECRET, secret_aad
from securekey.store.engine import WRITE_OPTION, make_engine
from securekey.store.master_keys import NEXT, adopt_next_key, key_records
from securekey.store.migrate import upgrade
from securekey.store.notices import RELEASE_CHANNEL, Listener, NoticeBus
from securekey.store.repository import SqlRepository

__all__ = ["RELEASE_CHANNEL", "DatabaseHealth", "SqlRepository", "SqlStore", "is_disconnect"]

log = logging.getLogger("securekey.store")

#: Committed state changes, one info line each (the store logs them after the commit).
audit_log = logging.getLogger("securekey.audit")


#: How often (seconds, at most) a process looks for a master-key rotation it must join.
KEY_REFRESH_SECONDS = 2.0


def is_disconnect(error: BaseException) -> bool:
    """Whether ``error`` says the database cannot be reached, rather than that a query is wrong.

    SQLAlchemy wraps driver errors. PostgreSQL: no SQLSTATE (refused at connect), class 08
    (connection exception), 57P0x (shutdown, crash), 57014 (our statement timeout) and class 53
    (out of connections, disk full). SQLite: a file that cannot be opened, read or written.
    A connection closed under us (``InterfaceError``, or one SQLAlchemy flagged invalidated) is
    one too. Anything else (a missing table, a bad query) is a bug and stays a 500.
    """
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, InterfaceError):
        return True
    if not isinstance(error, OperationalError):
        return False
    orig = error.orig
    sqlite_name = getattr(orig, "sqlite_errorname", None)
    if sqlite_name is not None:
        return str(sqlite_name).startswith(("SQLITE_CANTOPEN", "SQLITE_IOERR", "SQLITE_FULL"))
    state = getattr(orig, "sqlstate", None)
    if state is None:
        return True
    return str(state).startswith(("08", "53", "57P")) or state == "57014"


class DatabaseHealth:
    """Whether the database answered last time, so an outage is logged once, not per request.

    The first failure of an outage logs one warning (driver error class only: its text may name
    hosts and users); the first success after it logs how long it lasted.
    """

    def __init__(self, where: str) -> None:
        self.where = where
        self._down_since: float | None = None
        self._lock = threading.Lock()
        self.outages = 0

    @property
    def down(self) -> bool:
        """True between a failure and the next success."""
        return self._down_since is not None

    def failed(self, error: BaseException) -> None:
        """Record a failure to reach the database (logs at the start of an outage)."""
        with self._lock:
            if self._down_since is not None:
                return
            self._down_since = time.monotonic()
            self.outages += 1
        log.warning(
            "database unavailable (%s at %s): answering 503 and serving known config from "
            "memory until it is back",
            type(error).__name__,
            self.where,
        )

    def ok(self) -> None:
        """Record a success (logs the end of an outage)."""
        if self._down_since is None:
            return
        with self._lock:
            since, self._down_since = self._down_since, None
        if since is not None:
            log.info("database reachable again after %.1f s", time.monotonic() - since)


class SqlStore:
    """A SQLAlchemy-backed store. ``migrate=True`` applies migrations on open."""

    def __init__(
        self,
        engine: Engine,
        cipher: Cipher,
        *,
        migrate: bool = True,
        key_refresh: float = KEY_REFRESH_SECONDS,
    ) -> None:
        self.engine = engine
        self.cipher = cipher
        self._notices = NoticeBus()
        self._key_refresh = key_refresh
        self._keys_checked = time.monotonic()
        url = engine.url
        self.health = DatabaseHealth(
            f"{url.host}:{url.port or 5432}" if url.host else str(url.database or "memory")
        )
        if migrate:
            upgrade(engine)
        self._tokens_ready = False
        try:
            self._prepare_tokens()
        except (OperationalError, InterfaceError, DBAPIError) as exc:
            if not is_disconnect(exc):
                raise
            # Unreachable now: the first transaction that reaches the database does it.
            self.health.failed(exc)

    def _prepare_tokens(self) -> None:
        """Load the token-digest key and convert legacy digests, once per store."""
        self._load_token_key()
        self._key_legacy_token_digests()
        self._tokens_ready = True

    @classmethod
    def open(cls, url: str, cipher: Cipher, *, migrate: bool = True) -> SqlStore:
        """Open the database at ``url`` (SQLite or PostgreSQL)."""
        return cls(make_engine(url), cipher, migrate=migrate)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` with the notices of every commit (see ``store.notices``)."""
        self._notices.add_listener(listener)

    def listen(self, timeout: float = 10.0) -> bool:
        """Hear other replicas' notices too (PostgreSQL; one LISTEN connection per store)."""
        url = self.engine.url.set(drivername="postgresql")
        dsn = url.render_as_string(hide_password=False) if self.dialect == "postgresql" else None
        return self._notices.listen(dsn, self.health, timeout)

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[SqlRepository]:
        """One transaction; commits on success, rolls back on any exception."""
        notices: list[ReleaseNotice] = []
        events: list[AuditEvent] = []
        try:
            if not self._tokens_ready:
                self._prepare_tokens()
            with self.engine.connect() as conn:
                if self.dialect == "sqlite":
                    conn = conn.execution_options(**{WRITE_OPTION: write})
                with conn.begin():
                    self._join_key_rotation(conn)
                    yield SqlRepository(conn, self.cipher, notices, events)
        except SecureKeyError as exc:
            # A use case that wrapped a lost connection in its own error (a rotation that
            # "failed") is an outage too: the transaction rolled back, the caller may retry.
            cause = exc.__cause__
            if cause is None or not is_disconnect(cause):
                raise
            self.health.failed(cause)
            raise UnavailableError(
                "The database is unavailable right now; try again in a few seconds."
            ) from None
        except DBIntegrityError:
            raise BusyError(
                "A concurrent change took the same name or version; try again."
            ) from None
        except (OperationalError, InterfaceError, DBAPIError) as exc:
            if isinstance(exc, OperationalError) and "database is locked" in str(exc):
                raise BusyError("The database is busy; try again.") from None
            if str(getattr(exc.orig, "sqlstate", "")).startswith("40"):
                # Serialization failure or deadlock: PostgreSQL rolled back; a retry succeeds.
                raise BusyError("A concurrent change got in the way; try again.") from None
            if not is_disconnect(exc):
                raise
            self.health.failed(exc)
            raise UnavailableError(
                "The database is unavailable right now; try again in a few seconds."
            ) from None
        self.health.ok()
        for event in events:
            _log_event(event)
        if notices:
            self._notices.publish(notices)

    def _join_key_rotation(self, conn: Connection) -> None:
        """Every few seconds: if a master-key rotation began, write under its new key."""
        now = time.monotonic()
        if now - self._keys_checked < self._key_refresh:
            return
        self._keys_checked = now
        found = conn.execute(
            sa.select(t.master_keys.c.key_id).where(t.master_keys.c.state == NEXT)
        ).first()
        if found is not None and found.key_id != self.cipher.key_id:
            adopt_next_key(conn, self.cipher, key_records(conn))

    def close(self) -> None:
        """Stop listening and release every pooled connection."""
        self._notices.close()
        self.engine.dispose()

    def _load_token_key(self) -> None:
        """Digest tokens under the key this database holds, creating it on first open.

        It is kept apart from the master key (encrypted under it, re-encrypted by a master-key
        rotation), so tokens stay valid when the master key changes.
        """
        if not sa.inspect(self.engine).has_table(t.server_secrets.name):
            return  # opened without migrations on an old schema: nothing stored to digest yet
        secrets = t.server_secrets
        aad = secret_aad(TOKEN_DIGEST_SECRET)
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(secrets.c.value_enc).where(secrets.c.name == TOKEN_DIGEST_SECRET)
            ).first()
            if row is None:
                key = self.cipher.initial_token_key()
                try:
                    with conn.begin_nested():
                        conn.execute(
                            secrets.insert().values(
                                name=TOKEN_DIGEST_SECRET,
                                value_enc=self.cipher.encrypt(key, aad),
                                created_at=datetime.now(UTC),
                            )
                        )
                except DBIntegrityError:
                    # Another replica created it first: use theirs.
                    row = conn.execute(
                        sa.select(secrets.c.value_enc).where(secrets.c.name == TOKEN_DIGEST_SECRET)
                    ).one()
            if row is not None:
                key = self.cipher.decrypt(row.value_enc, aad)
        self.cipher.use_token_key(key)

    def _key_legacy_token_digests(self) -> None:
        """Turn plain SHA-256 token digests (before migration 0004) into keyed ones, in place.

        Only the store holds the master key, so this runs here rather than in the migration.
        Idempotent, and safe with replicas starting together (each row changes once).
        """
        legacy = t.tokens.c.hash_scheme == "sha256"
        with self.engine.begin() as conn:
            rows = conn.execute(sa.select(t.tokens.c.id, t.tokens.c.token_hash).where(legacy))
            for token_id, digest in list(rows):
                conn.execute(
                    t.tokens.update()
                    .where(t.tokens.c.id == token_id, legacy)
                    .values(token_hash=self.cipher.token_digest(digest), hash_scheme="hmac-sha256")
                )


def _log_event(event: AuditEvent) -> None:
    """One info line per committed state change: the audit event (names, fingerprints only)."""
    details = " ".join(f"{k}={v}" for k, v in sorted(event.details.items()))
    audit_log.info(
        "%s %s by %s%s",
        event.action,
        event.target_name,
        event.actor,
        f": {details}" if details else "",
        extra={
            "event": {
                "action": event.action,
                "actor": event.actor,
                "target": {
                    "type": event.target_type,
                    "id": event.target_id,
                    "name": event.target_name,
                },
                "details": dict(event.details),
            }
        },
    )
