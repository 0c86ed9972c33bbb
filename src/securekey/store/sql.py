"""The SQL store: one implementation of ``services.ports.Store`` for SQLite and PostgreSQL.

Values are encrypted here, on the way in, and decrypted on the way out: nothing above this
module sees ciphertext and nothing below it sees plaintext.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import IntegrityError as DBIntegrityError

from securekey.crypto import Cipher
from securekey.domain.keys import Key, KeyPair
from securekey.domain.models import (
    Addon,
    App,
    Attachment,
    AuditEvent,
    AuditQuery,
    Delivery,
    KeyState,
    KeyVersion,
    Release,
    Token,
    TokenKind,
    Webhook,
)
from securekey.domain.rotation import RotationOutcome
from securekey.exceptions import BusyError, DecryptionError, SecureKeyError, UnavailableError
from securekey.services.ports import IDENTITY_CHANGED, ReleaseNotice
from securekey.store import tables as t
from securekey.store.engine import WRITE_OPTION, make_engine
from securekey.store.migrate import upgrade

__all__ = ["RELEASE_CHANNEL", "DatabaseHealth", "SqlRepository", "SqlStore", "is_disconnect"]

log = logging.getLogger("securekey.store")

#: Committed state changes, one info line each (the store logs them after the commit).
audit_log = logging.getLogger("securekey.audit")

#: PostgreSQL NOTIFY channel on which every committed release is announced as ``app_id:version``.
RELEASE_CHANNEL = "securekey_release"

Listener = Callable[[Sequence[ReleaseNotice]], None]

#: How often (seconds, at most) a process looks for a master-key rotation it must join.
KEY_REFRESH_SECONDS = 2.0


def _looks_like_uuid(ref: str) -> bool:
    return len(ref) == 36 and ref.count("-") == 4


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
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
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
        """Call ``listener`` with the releases of every committed transaction."""
        with self._lock:
            self._listeners.append(listener)

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
            with self._lock:
                listeners = list(self._listeners)
            for listener in listeners:
                listener(notices)

    def _join_key_rotation(self, conn: Connection) -> None:
        """Every few seconds: if a master-key rotation began, write under its new key."""
        now = time.monotonic()
        if now - self._keys_checked < self._key_refresh:
            return
        self._keys_checked = now
        from securekey.store.master_keys import NEXT, adopt_next_key, key_records

        found = conn.execute(
            sa.select(t.master_keys.c.key_id).where(t.master_keys.c.state == NEXT)
        ).first()
        if found is not None and found.key_id != self.cipher.key_id:
            adopt_next_key(conn, self.cipher, key_records(conn))

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()

    def _load_token_key(self) -> None:
        """Digest tokens under the key this database holds, creating it on first open.

        It is kept apart from the master key (encrypted under it, re-encrypted by a master-key
        rotation), so tokens stay valid when the master key changes.
        """
        if not sa.inspect(self.engine).has_table(t.server_secrets.name):
            return  # opened without migrations on an old schema: nothing stored to digest yet
        secrets = t.server_secrets
        aad = _secret_aad(TOKEN_DIGEST_SECRET)
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


class SqlRepository:
    """``services.ports.Repository`` over one open connection and transaction."""

    def __init__(
        self,
        conn: Connection,
        cipher: Cipher,
        notices: list[ReleaseNotice],
        events: list[AuditEvent] | None = None,
    ) -> None:
        self.conn = conn
        self.cipher = cipher
        self._notices = notices
        self._events = events if events is not None else []
        self._pg = conn.dialect.name == "postgresql"

    # ------------------------------------------------------------------ apps

    def add_app(self, app: App) -> None:
        self.conn.execute(
            t.apps.insert().values(
                id=app.id,
                name=app.name,
                release_version=app.release,
                created_at=app.created_at,
                updated_at=app.updated_at,
            )
        )

    def get_app(self, ref: str, *, lock: bool = False) -> App | None:
        col = t.apps.c.id if _looks_like_uuid(ref) else t.apps.c.name
        query = sa.select(t.apps).where(col == ref)
        if lock and self._pg:
            query = query.with_for_update()
        row = self.conn.execute(query).mappings().first()
        return _app(row) if row else None

    def list_apps(self) -> list[App]:
        rows = self.conn.execute(sa.select(t.apps).order_by(t.apps.c.name)).mappings()
        return [_app(r) for r in rows]

    def rename_app(self, app_id: str, name: str, at: datetime) -> None:
        self.conn.execute(
            t.apps.update().where(t.apps.c.id == app_id).values(name=name, updated_at=at)
        )

    def delete_app(self, app_id: str) -> None:
        self.conn.execute(t.apps.delete().where(t.apps.c.id == app_id))

    def announce_identity_change(self, app_id: str) -> None:
        self._announce(ReleaseNotice(app_id, IDENTITY_CHANGED))

    # -------------------------------------------------------------- releases

    def bump_release(self, app_id: str, at: datetime) -> int:
        version = self.conn.execute(
            t.apps.update()
            .where(t.apps.c.id == app_id)
            .values(release_version=t.apps.c.release_version + 1, updated_at=at)
            .returning(t.apps.c.release_version)
        ).scalar_one()
        return int(version)

    def add_release(self, release: Release) -> None:
        self.conn.execute(t.releases.insert().values(**_release_row(release)))
        self._announce(ReleaseNotice(release.app_id, release.version))

    def _announce(self, notice: ReleaseNotice) -> None:
        self._notices.append(notice)
        if self._pg:
            # Other replicas learn of the release on commit; the payload carries ids only.
            self.conn.execute(
                sa.text("SELECT pg_notify(:channel, :payload)"),
                {"channel": RELEASE_CHANNEL, "payload": f"{notice.app_id}:{notice.version}"},
            )

    def get_release(self, app_id: str, version: int) -> Release | None:
        row = (
            self.conn.execute(
                sa.select(t.releases).where(
                    t.releases.c.app_id == app_id, t.releases.c.version == version
                )
            )
            .mappings()
            .first()
        )
        return _release(row) if row else None

    def get_release_by_id(self, app_id: str, release_id: str) -> Release | None:
        row = (
            self.conn.execute(
                sa.select(t.releases).where(
                    t.releases.c.app_id == app_id, t.releases.c.id == release_id
                )
            )
            .mappings()
            .first()
        )
        return _release(row) if row else None

    def list_releases(
        self,
        app_id: str,
        *,
        start: int | None = None,
        end: int | None = None,
        limit: int | None = None,
        descending: bool = False,
    ) -> list[Release]:
        query = sa.select(t.releases).where(t.releases.c.app_id == app_id)
        if start is not None:
            query = query.where(t.releases.c.version >= start)
        if end is not None:
            query = query.where(t.releases.c.version <= end)
        order = t.releases.c.version.desc() if descending else t.releases.c.version.asc()
        query = query.order_by(order)
        if limit is not None:
            query = query.limit(limit)
        return [_release(r) for r in self.conn.execute(query).mappings()]

    # -------------------------------------------------------- plain config vars

    def get_plain_vars(self, app_id: str) -> dict[str, str]:
        rows = self.conn.execute(
            sa.select(t.config_vars.c.name, t.config_vars.c.value_enc).where(
                t.config_vars.c.app_id == app_id
            )
        )
        return {
            name: self.cipher.decrypt(blob, _var_aad(app_id, name)).decode() for name, blob in rows
        }

    def put_plain_vars(self, app_id: str, changes: Mapping[str, str | None]) -> None:
        for name, value in changes.items():
            self.conn.execute(
                t.config_vars.delete().where(
                    t.config_vars.c.app_id == app_id, t.config_vars.c.name == name
                )
            )
            if value is not None:
                blob = self.cipher.encrypt(value.encode(), _var_aad(app_id, name))
                self.conn.execute(
                    t.config_vars.insert().values(app_id=app_id, name=name, value_enc=blob)
                )

    # ------------------------------------------------------------- add-ons

    def add_addon(self, addon: Addon, pair: KeyPair) -> None:
        self.conn.execute(t.addons.insert().values(**_addon_row(addon)))
        for version, state, key in (
            (addon.key_version - 1, KeyState.PREVIOUS, pair.previous),
            (addon.key_version, KeyState.LATEST, pair.latest),
        ):
            self._insert_key(addon.id, version, state, key, addon.created_at)

    def get_addon(self, ref: str, *, lock: bool = False) -> Addon | None:
        col = t.addons.c.id if _looks_like_uuid(ref) else t.addons.c.name
        query = sa.select(t.addons).where(col == ref)
        if lock and self._pg:
            query = query.with_for_update()
        row = self.conn.execute(query).mappings().first()
        return _addon(row) if row else None

    def list_addons(self, *, app_id: str | None = None) -> list[Addon]:
        query = sa.select(t.addons).order_by(t.addons.c.created_at, t.addons.c.name)
        if app_id is not None:
            query = query.where(t.addons.c.app_id == app_id)
        return [_addon(r) for r in self.conn.execute(query).mappings()]

    def get_pairs(self, addon_ids: Collection[str]) -> dict[str, KeyPair]:
        if not addon_ids:
            return {}
        rows = self.conn.execute(
            sa.select(
                t.key_versions.c.addon_id,
                t.key_versions.c.version,
                t.key_versions.c.state,
                t.key_versions.c.material_enc,
            ).where(
                t.key_versions.c.addon_id.in_(list(addon_ids)),
                t.key_versions.c.state.in_([KeyState.LATEST.value, KeyState.PREVIOUS.value]),
            )
        )
        found: dict[str, dict[str, Key]] = {}
        for addon_id, version, state, blob in rows:
            if blob is None:
                raise DecryptionError("A key in service has no stored material.")
            material = self.cipher.decrypt(blob, _key_aad(addon_id, version)).decode()
            found.setdefault(addon_id, {})[state] = Key(material)
        pairs = {}
        for addon_id in addon_ids:
            slots = found.get(addon_id, {})
            if set(slots) != {KeyState.LATEST.value, KeyState.PREVIOUS.value}:
                raise DecryptionError(
                    "An add-on does not have exactly one LATEST and PREVIOUS key."
                )
            pairs[addon_id] = KeyPair(slots[KeyState.LATEST.value], slots[KeyState.PREVIOUS.value])
        return pairs

    def list_key_versions(self, addon_id: str) -> list[KeyVersion]:
        rows = self.conn.execute(
            sa.select(
                t.key_versions.c.version,
                t.key_versions.c.fingerprint,
                t.key_versions.c.state,
                t.key_versions.c.created_at,
                t.key_versions.c.retired_at,
            )
            .where(t.key_versions.c.addon_id == addon_id)
            .order_by(t.key_versions.c.version)
        )
        return [
            KeyVersion(addon_id, version, fp, KeyState(state), created, retired)
            for version, fp, state, created, retired in rows
        ]

    def delete_addon(self, addon_id: str) -> None:
        self.conn.execute(t.key_versions.delete().where(t.key_versions.c.addon_id == addon_id))
        self.conn.execute(t.attachments.delete().where(t.attachments.c.addon_id == addon_id))
        self.conn.execute(t.addons.delete().where(t.addons.c.id == addon_id))

    def has_due(self, now: datetime) -> bool:
        query = sa.select(t.addons.c.id).where(t.addons.c.next_rotation_at <= now).limit(1)
        return self.conn.execute(query).first() is not None

    def claim_due(self, now: datetime, exclude: Collection[str], limit: int) -> list[Addon]:
        query = (
            sa.select(t.addons)
            .where(t.addons.c.next_rotation_at <= now)
            .order_by(t.addons.c.next_rotation_at)
            .limit(limit)
        )
        if exclude:
            query = query.where(t.addons.c.id.not_in(list(exclude)))
        if self._pg:
            # Another process holding a row is rotating it: skip it, never wait, never repeat.
            query = query.with_for_update(skip_locked=True)
        return [_addon(r) for r in self.conn.execute(query).mappings()]

    def lock_addons(
        self,
        *,
        after: str | None,
        limit: int,
        plan: str | None = None,
        app_id: str | None = None,
    ) -> list[Addon]:
        query = _matching(sa.select(t.addons), plan, app_id).order_by(t.addons.c.id).limit(limit)
        if after is not None:
            query = query.where(t.addons.c.id > after)
        if self._pg:
            # Wait for a scheduler holding one (it commits soon); id order never deadlocks.
            query = query.with_for_update()
        return [_addon(r) for r in self.conn.execute(query).mappings()]

    def count_addons(
        self, *, after: str | None = None, plan: str | None = None, app_id: str | None = None
    ) -> int:
        query = _matching(sa.select(sa.func.count()).select_from(t.addons), plan, app_id)
        if after is not None:
            query = query.where(t.addons.c.id > after)
        return int(self.conn.execute(query).scalar_one())

    # ----------------------------------------------------- batched rotation

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested transaction: an exception inside undoes only what the block wrote."""
        mark = len(self._notices)
        try:
            with self.conn.begin_nested():
                yield
        except BaseException:
            # A release rolled back here was never made: nobody may hear of it.
            del self._notices[mark:]
            raise

    def lock_apps(self, app_ids: Collection[str], *, skip_locked: bool = False) -> dict[str, App]:
        if not app_ids:
            return {}
        query = sa.select(t.apps).where(t.apps.c.id.in_(list(app_ids))).order_by(t.apps.c.id)
        if self._pg:
            # One statement, rows locked in id order: the order every use case takes apps in.
            # Skipping, a scheduler never waits: apps another transaction holds are left out.
            query = query.with_for_update(skip_locked=skip_locked)
        return {r["id"]: _app(r) for r in self.conn.execute(query).mappings()}

    def list_attachments_of(
        self, *, addon_ids: Collection[str] = (), app_ids: Collection[str] = ()
    ) -> list[Attachment]:
        clauses = []
        if addon_ids:
            clauses.append(t.attachments.c.addon_id.in_(list(addon_ids)))
        if app_ids:
            clauses.append(t.attachments.c.app_id.in_(list(app_ids)))
        if not clauses:
            return []
        query = (
            sa.select(t.attachments)
            .where(sa.or_(*clauses))
            .order_by(t.attachments.c.created_at, t.attachments.c.name)
        )
        return [_attachment(r) for r in self.conn.execute(query).mappings()]

    def get_plain_vars_of(self, app_ids: Collection[str]) -> dict[str, dict[str, str]]:
        found: dict[str, dict[str, str]] = {app_id: {} for app_id in app_ids}
        if not app_ids:
            return found
        rows = self.conn.execute(
            sa.select(
                t.config_vars.c.app_id, t.config_vars.c.name, t.config_vars.c.value_enc
            ).where(t.config_vars.c.app_id.in_(list(app_ids)))
        )
        for app_id, name, blob in rows:
            found[app_id][name] = self.cipher.decrypt(blob, _var_aad(app_id, name)).decode()
        return found

    def list_webhooks_of(self, app_ids: Collection[str]) -> dict[str, list[Webhook]]:
        found: dict[str, list[Webhook]] = {app_id: [] for app_id in app_ids}
        if not app_ids:
            return found
        query = (
            sa.select(t.webhooks)
            .where(t.webhooks.c.app_id.in_(list(app_ids)))
            .order_by(t.webhooks.c.created_at, t.webhooks.c.id)
        )
        for row in self.conn.execute(query).mappings():
            found[row["app_id"]].append(self._webhook(row))
        return found

    def store_rotations(
        self, rotations: Sequence[tuple[Addon, RotationOutcome]], at: datetime
    ) -> None:
        moved: list[dict[str, Any]] = []
        gone: list[dict[str, Any]] = []
        fresh: list[dict[str, Any]] = []
        for addon, outcome in rotations:
            for version, state in outcome.transitions:
                row = {"b_addon": addon.id, "b_version": version, "b_state": state.value}
                (gone if state in (KeyState.RETIRED, KeyState.REVOKED) else moved).append(row)
            new_versions = [(outcome.latest_version, KeyState.LATEST, outcome.pair.latest)]
            if outcome.previous_version not in {v for v, _ in outcome.transitions}:
                new_versions.append(
                    (outcome.previous_version, KeyState.PREVIOUS, outcome.pair.previous)
                )
            fresh += [self._key_row(addon.id, v, s, k, at) for v, s, k in new_versions]
        kv = t.key_versions.c
        where = (kv.addon_id == sa.bindparam("b_addon"), kv.version == sa.bindparam("b_version"))
        if moved:
            self.conn.execute(
                t.key_versions.update().where(*where).values(state=sa.bindparam("b_state")),
                moved,
            )
        if gone:
            # History keeps fingerprints and times; the material leaves the database.
            self.conn.execute(
                t.key_versions.update()
                .where(*where)
                .values(state=sa.bindparam("b_state"), material_enc=None, retired_at=at),
                gone,
            )
        if fresh:
            self.conn.execute(t.key_versions.insert(), fresh)
        if rotations:
            self.conn.execute(
                t.addons.update()
                .where(t.addons.c.id == sa.bindparam("b_id"))
                .values(
                    key_version=sa.bindparam("b_key_version"),
                    last_rotated_at=sa.bindparam("b_last"),
                    next_rotation_at=sa.bindparam("b_next"),
                    updated_at=sa.bindparam("b_updated"),
                ),
                [
                    {
                        "b_id": a.id,
                        "b_key_version": a.key_version,
                        "b_last": a.last_rotated_at,
                        "b_next": a.next_rotation_at,
                        "b_updated": a.updated_at,
                    }
                    for a, _ in rotations
                ],
            )

    def add_releases(self, releases: Sequence[Release]) -> None:
        if not releases:
            return
        self.conn.execute(t.releases.insert(), [_release_row(r) for r in releases])
        self._notices.extend(ReleaseNotice(r.app_id, r.version) for r in releases)
        if self._pg:
            # One statement for every notice; PostgreSQL delivers them, in order, on commit.
            self.conn.execute(
                sa.text("SELECT pg_notify(:channel, p) FROM unnest(CAST(:payloads AS text[])) p"),
                {
                    "channel": RELEASE_CHANNEL,
                    "payloads": [f"{r.app_id}:{r.version}" for r in releases],
                },
            )

    def set_release_versions(self, versions: Mapping[str, int], at: datetime) -> None:
        if not versions:
            return
        self.conn.execute(
            t.apps.update()
            .where(t.apps.c.id == sa.bindparam("b_id"))
            .values(release_version=sa.bindparam("b_version"), updated_at=at),
            [{"b_id": app_id, "b_version": v} for app_id, v in versions.items()],
        )

    def add_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        if deliveries:
            self.conn.execute(t.webhook_deliveries.insert(), [_delivery_row(d) for d in deliveries])

    def add_events(self, events: Sequence[AuditEvent]) -> None:
        self._events.extend(events)
        if events:
            self.conn.execute(t.audit_events.insert(), [_event_row(e) for e in events])

    def _key_row(
        self, addon_id: str, version: int, state: KeyState, key: Key, at: datetime
    ) -> dict[str, Any]:
        return {
            "addon_id": addon_id,
            "version": version,
            "fingerprint": key.fingerprint,
            "state": state.value,
            "material_enc": self.cipher.encrypt(key.hex.encode(), _key_aad(addon_id, version)),
            "created_at": at,
            "retired_at": None,
        }

    def _insert_key(
        self, addon_id: str, version: int, state: KeyState, key: Key, at: datetime
    ) -> None:
        self.conn.execute(
            t.key_versions.insert().values(**self._key_row(addon_id, version, state, key, at))
        )

    # ---------------------------------------------------------- attachments

    def add_attachment(self, attachment: Attachment) -> None:
        self.conn.execute(
            t.attachments.insert().values(
                id=attachment.id,
                addon_id=attachment.addon_id,
                app_id=attachment.app_id,
                name=attachment.name,
                created_at=attachment.created_at,
                updated_at=attachment.updated_at,
            )
        )

    def get_attachment(self, ref: str, *, app_id: str | None = None) -> Attachment | None:
        query = sa.select(t.attachments)
        if _looks_like_uuid(ref):
            query = query.where(t.attachments.c.id == ref)
            if app_id is not None:
                query = query.where(t.attachments.c.app_id == app_id)
        elif app_id is not None:
            query = query.where(t.attachments.c.app_id == app_id, t.attachments.c.name == ref)
        else:
            return None
        row = self.conn.execute(query).mappings().first()
        return _attachment(row) if row else None

    def list_attachments(
        self, *, addon_id: str | None = None, app_id: str | None = None
    ) -> list[Attachment]:
        query = sa.select(t.attachments).order_by(t.attachments.c.created_at, t.attachments.c.name)
        if addon_id is not None:
            query = query.where(t.attachments.c.addon_id == addon_id)
        if app_id is not None:
            query = query.where(t.attachments.c.app_id == app_id)
        return [_attachment(r) for r in self.conn.execute(query).mappings()]

    def delete_attachment(self, attachment_id: str) -> None:
        self.conn.execute(t.attachments.delete().where(t.attachments.c.id == attachment_id))

    # --------------------------------------------------------------- tokens

    def add_token(self, token: Token) -> None:
        self.conn.execute(
            t.tokens.insert().values(
                id=token.id,
                kind=token.kind.value,
                app_id=token.app_id,
                token_hash=token.token_hash,
                hash_scheme=token.hash_scheme,
                source=token.source,
                description=token.description,
                created_at=token.created_at,
                last_used_at=token.last_used_at,
                revoked_at=token.revoked_at,
            )
        )

    def find_token(self, token_hash: str) -> Token | None:
        row = (
            self.conn.execute(sa.select(t.tokens).where(t.tokens.c.token_hash == token_hash))
            .mappings()
            .first()
        )
        return _token(row) if row else None

    def list_tokens(
        self,
        *,
        app_id: str | None = None,
        kind: str | None = None,
        source: str | None = None,
        lock: bool = False,
    ) -> list[Token]:
        query = (
            sa.select(t.tokens)
            .where(t.tokens.c.revoked_at.is_(None))
            .order_by(t.tokens.c.created_at, t.tokens.c.id)
        )
        if app_id is not None:
            query = query.where(t.tokens.c.app_id == app_id)
        if kind is not None:
            query = query.where(t.tokens.c.kind == kind)
        if source is not None:
            query = query.where(t.tokens.c.source == source)
        if lock and self._pg:
            query = query.with_for_update()
        return [_token(r) for r in self.conn.execute(query).mappings()]

    def delete_token(self, token_id: str) -> None:
        self.conn.execute(t.tokens.delete().where(t.tokens.c.id == token_id))

    def revoke_token(self, token_id: str, at: datetime) -> None:
        self.conn.execute(
            t.tokens.update()
            .where(t.tokens.c.id == token_id, t.tokens.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )

    def touch_token(self, token_id: str, at: datetime, since: datetime) -> None:
        self.conn.execute(
            t.tokens.update()
            .where(
                t.tokens.c.id == token_id,
                sa.or_(t.tokens.c.last_used_at.is_(None), t.tokens.c.last_used_at < since),
            )
            .values(last_used_at=at)
        )

    # ------------------------------------------------------------- webhooks

    def add_webhook(self, webhook: Webhook) -> None:
        self.conn.execute(
            t.webhooks.insert().values(
                id=webhook.id,
                app_id=webhook.app_id,
                url=webhook.url,
                include=json.dumps(list(webhook.include)),
                level=webhook.level,
                secret_enc=self.cipher.encrypt(webhook.secret.encode(), _hook_aad(webhook.id)),
                authorization_enc=None
                if webhook.authorization is None
                else self.cipher.encrypt(
                    webhook.authorization.encode(), _hook_aad(webhook.id, "authorization")
                ),
                created_at=webhook.created_at,
                updated_at=webhook.updated_at,
            )
        )

    def get_webhook(self, app_id: str, webhook_id: str) -> Webhook | None:
        row = (
            self.conn.execute(
                sa.select(t.webhooks).where(
                    t.webhooks.c.app_id == app_id, t.webhooks.c.id == webhook_id
                )
            )
            .mappings()
            .first()
        )
        return self._webhook(row) if row else None

    def list_webhooks(self, app_id: str) -> list[Webhook]:
        query = (
            sa.select(t.webhooks)
            .where(t.webhooks.c.app_id == app_id)
            .order_by(t.webhooks.c.created_at, t.webhooks.c.id)
        )
        return [self._webhook(r) for r in self.conn.execute(query).mappings()]

    def delete_webhook(self, webhook_id: str) -> None:
        self.conn.execute(
            t.webhook_deliveries.delete().where(t.webhook_deliveries.c.webhook_id == webhook_id)
        )
        self.conn.execute(t.webhooks.delete().where(t.webhooks.c.id == webhook_id))

    def add_delivery(self, delivery: Delivery) -> None:
        self.conn.execute(t.webhook_deliveries.insert().values(**_delivery_row(delivery)))

    def get_delivery(self, app_id: str, delivery_id: str) -> Delivery | None:
        row = (
            self.conn.execute(
                sa.select(t.webhook_deliveries).where(
                    t.webhook_deliveries.c.app_id == app_id,
                    t.webhook_deliveries.c.id == delivery_id,
                )
            )
            .mappings()
            .first()
        )
        return _delivery(row) if row else None

    def list_deliveries(self, app_id: str) -> list[Delivery]:
        query = (
            sa.select(t.webhook_deliveries)
            .where(t.webhook_deliveries.c.app_id == app_id)
            .order_by(t.webhook_deliveries.c.created_at, t.webhook_deliveries.c.id)
        )
        return [_delivery(r) for r in self.conn.execute(query).mappings()]

    def claim_due_delivery(
        self, now: datetime, exclude: Collection[str], exclude_webhooks: Collection[str] = ()
    ) -> Delivery | None:
        c = t.webhook_deliveries.c
        query = (
            sa.select(t.webhook_deliveries)
            .where(c.next_attempt_at.is_not(None), c.next_attempt_at <= now)
            .order_by(c.next_attempt_at)
            .limit(1)
        )
        if exclude:
            query = query.where(c.id.not_in(list(exclude)))
        if exclude_webhooks:
            query = query.where(c.webhook_id.not_in(list(exclude_webhooks)))
        if self._pg:
            query = query.with_for_update(skip_locked=True)
        row = self.conn.execute(query).mappings().first()
        return _delivery(row) if row else None

    def update_delivery(self, delivery: Delivery) -> None:
        row = _delivery_row(delivery)
        self.conn.execute(
            t.webhook_deliveries.update()
            .where(t.webhook_deliveries.c.id == delivery.id)
            .values(
                status=row["status"],
                num_attempts=row["num_attempts"],
                next_attempt_at=row["next_attempt_at"],
                last_code=row["last_code"],
                last_error=row["last_error"],
                updated_at=row["updated_at"],
            )
        )

    def _webhook(self, row: Any) -> Webhook:
        secret = self.cipher.decrypt(row["secret_enc"], _hook_aad(row["id"])).decode()
        authorization = None
        if row["authorization_enc"] is not None:
            authorization = self.cipher.decrypt(
                row["authorization_enc"], _hook_aad(row["id"], "authorization")
            ).decode()
        return Webhook(
            row["id"],
            row["app_id"],
            row["url"],
            tuple(json.loads(row["include"])),
            row["level"],
            secret,
            row["created_at"],
            row["updated_at"],
            authorization,
        )

    # ---------------------------------------------------------------- audit

    def add_event(self, event: AuditEvent) -> None:
        self._events.append(event)
        self.conn.execute(t.audit_events.insert().values(**_event_row(event)))

    def list_events(self, query: AuditQuery) -> list[AuditEvent]:
        q, c = query, t.audit_events.c
        select = sa.select(t.audit_events).order_by(c.seq.desc() if q.newest_first else c.seq)
        if isinstance(q.action, str):
            select = select.where(c.action == q.action)
        elif q.action is not None:
            select = select.where(c.action.in_(q.action))
        if q.target_id is not None:
            select = select.where(c.target_id == q.target_id)
        if q.actor is not None:
            select = select.where(c.actor == q.actor)
        if q.target is not None:
            select = select.where(sa.or_(c.target_name == q.target, c.target_id == q.target))
        if q.target_type is not None:
            select = select.where(c.target_type == q.target_type)
        if q.app is not None:
            # The app itself, or an event whose details name it (attach, detach, add-on create).
            # details is JSON written with sort_keys and default separators, so the pair is exact.
            named = json.dumps({"app": q.app})[1:-1]
            select = select.where(
                sa.or_(
                    sa.and_(c.target_type == "app", c.target_name == q.app),
                    c.details.contains(named, autoescape=True),
                )
            )
        if q.since is not None:
            select = select.where(c.at >= q.since)
        if q.until is not None:
            select = select.where(c.at < q.until)
        if q.after_seq is not None:
            select = select.where(c.seq > q.after_seq)
        if q.before_seq is not None:
            select = select.where(c.seq < q.before_seq)
        if q.limit is not None:
            select = select.limit(q.limit)
        return [
            AuditEvent(
                r["id"],
                r["at"],
                r["actor"],
                r["action"],
                r["target_type"],
                r["target_id"],
                r["target_name"],
                json.loads(r["details"]),
                int(r["seq"]),
            )
            for r in self.conn.execute(select).mappings()
        ]


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


def _var_aad(app_id: str, name: str) -> bytes:
    return f"config:{app_id}:{name}".encode()


def _key_aad(addon_id: str, version: int) -> bytes:
    return f"key:{addon_id}:{version}".encode()


#: The ``server_secrets`` row holding the key token digests are made under.
TOKEN_DIGEST_SECRET = "token-digest"  # noqa: S105 (a row name, not a secret)


def _secret_aad(name: str) -> bytes:
    return b"server-secret:" + name.encode()


def _hook_aad(webhook_id: str, part: str = "secret") -> bytes:
    suffix = "" if part == "secret" else f":{part}"
    return f"webhook:{webhook_id}{suffix}".encode()


def _token(row: Any) -> Token:
    return Token(
        row["id"],
        TokenKind(row["kind"]),
        row["app_id"],
        row["token_hash"],
        row["description"],
        row["created_at"],
        row["last_used_at"],
        row["source"],
        row["hash_scheme"],
        row["revoked_at"],
    )


def _delivery(row: Any) -> Delivery:
    return Delivery(
        id=row["id"],
        webhook_id=row["webhook_id"],
        app_id=row["app_id"],
        event_id=row["event_id"],
        include=row["include"],
        payload=row["payload"],
        status=row["status"],
        num_attempts=row["num_attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_code=row["last_code"],
        last_error=row["last_error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _delivery_row(d: Delivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "webhook_id": d.webhook_id,
        "app_id": d.app_id,
        "event_id": d.event_id,
        "include": d.include,
        "payload": d.payload,
        "status": d.status,
        "num_attempts": d.num_attempts,
        "next_attempt_at": d.next_attempt_at,
        "last_code": d.last_code,
        "last_error": d.last_error,
        "created_at": d.created_at,
        "updated_at": d.updated_at,
    }


def _app(row: Any) -> App:
    return App(row["id"], row["name"], row["created_at"], row["updated_at"], row["release_version"])


def _addon(row: Any) -> Addon:
    return Addon(
        id=row["id"],
        name=row["name"],
        app_id=row["app_id"],
        plan=row["plan"],
        period=timedelta(seconds=row["period_seconds"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        last_rotated_at=row["last_rotated_at"],
        next_rotation_at=row["next_rotation_at"],
        key_version=row["key_version"],
    )


def _addon_row(addon: Addon) -> dict[str, Any]:
    return {
        "id": addon.id,
        "name": addon.name,
        "app_id": addon.app_id,
        "plan": addon.plan,
        "period_seconds": addon.period.total_seconds(),
        "key_version": addon.key_version,
        "created_at": addon.created_at,
        "updated_at": addon.updated_at,
        "last_rotated_at": addon.last_rotated_at,
        "next_rotation_at": addon.next_rotation_at,
    }


def _attachment(row: Any) -> Attachment:
    return Attachment(
        row["id"],
        row["addon_id"],
        row["app_id"],
        row["name"],
        row["created_at"],
        row["updated_at"],
    )


def _release_row(release: Release) -> dict[str, Any]:
    return {
        "id": release.id,
        "app_id": release.app_id,
        "version": release.version,
        "description": release.description,
        "config_fingerprint": release.config_fingerprint,
        "actor": release.actor,
        "created_at": release.created_at,
    }


def _event_row(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": event.at,
        "actor": event.actor,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "target_name": event.target_name,
        "details": json.dumps(event.details, sort_keys=True),
    }


def _matching(query: Any, plan: str | None, app_id: str | None) -> Any:
    """``query`` narrowed to add-ons on ``plan`` and/or billed to or attached to ``app_id``."""
    if plan is not None:
        query = query.where(t.addons.c.plan == plan)
    if app_id is not None:
        attached = sa.select(t.attachments.c.addon_id).where(t.attachments.c.app_id == app_id)
        query = query.where(sa.or_(t.addons.c.app_id == app_id, t.addons.c.id.in_(attached)))
    return query


def _release(row: Any) -> Release:
    return Release(
        row["id"],
        row["app_id"],
        row["version"],
        row["description"],
        row["config_fingerprint"],
        row["actor"],
        row["created_at"],
    )
