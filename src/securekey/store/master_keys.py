"""The master-key check at start-up, and moving every stored secret to a new master key.

The ``master_keys`` table holds, per key id, a check value (a constant encrypted under that key)
and a state: ``active`` (the key the data is under), ``next`` (a rotation towards it is under
way; it is stored wrapped under the active key so running replicas adopt it without a restart)
and ``retired`` (the check value and the wrapped key are gone: that key opens nothing here).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine, Table
from sqlalchemy.exc import IntegrityError as DBIntegrityError

from securekey.crypto import Cipher, MasterKey
from securekey.exceptions import ConfigurationError, DecryptionError
from securekey.store import tables as t
from securekey.store.aad import hook_aad, key_aad, secret_aad, var_aad

__all__ = [
    "ACTIVE",
    "ENCRYPTED",
    "NEXT",
    "RETIRED",
    "EncryptedColumn",
    "KeyRecord",
    "adopt_next_key",
    "begin_rotation",
    "census",
    "check_master_key",
    "finish_rotation",
    "has_data",
    "key_records",
    "reencrypt",
]

log = logging.getLogger("securekey.store")

ACTIVE, NEXT, RETIRED = "active", "next", "retired"


@dataclass(frozen=True)
class EncryptedColumn:
    """One column of ciphertexts, with the primary key that orders it and its associated data."""

    table: Table
    key: tuple[str, ...]
    column: str
    aad: Callable[[Any], bytes]

    @property
    def label(self) -> str:
        return f"{self.table.name}.{self.column}"


#: Every column that holds ciphertext under the master key. A new one must be added here, or a
#: master-key rotation would leave it under the old key (``census`` would then refuse to finish).
ENCRYPTED: tuple[EncryptedColumn, ...] = (
    EncryptedColumn(
        t.key_versions,
        ("addon_id", "version"),
        "material_enc",
        lambda r: key_aad(r.addon_id, r.version),
    ),
    EncryptedColumn(
        t.config_vars, ("app_id", "name"), "value_enc", lambda r: var_aad(r.app_id, r.name)
    ),
    EncryptedColumn(t.webhooks, ("id",), "secret_enc", lambda r: hook_aad(r.id)),
    EncryptedColumn(
        t.webhooks, ("id",), "authorization_enc", lambda r: hook_aad(r.id, "authorization")
    ),
    EncryptedColumn(t.server_secrets, ("name",), "value_enc", lambda r: secret_aad(r.name)),
)


@dataclass(frozen=True)
class KeyRecord:
    """One row of ``master_keys``."""

    key_id: str
    state: str
    check_enc: bytes | None
    wrapped_enc: bytes | None
    created_at: datetime
    retired_at: datetime | None


def key_records(conn: Connection) -> dict[str, KeyRecord]:
    """Every master key this database has known, by id."""
    rows = conn.execute(sa.select(t.master_keys)).mappings()
    return {r["key_id"]: KeyRecord(**r) for r in rows}


def has_data(conn: Connection) -> bool:
    """True if any table holds a row: such a database has a master key it must be opened with."""
    for table in t.metadata.sorted_tables:
        if conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first():
            return True
    return False


def _held(cipher: Cipher, key_id: str) -> MasterKey | None:
    for key in (cipher.master, *cipher.previous):
        if key.key_id == key_id:
            return key
    return None


def _sample_opens(conn: Connection, cipher: Cipher) -> bool:
    """For a database from before check values: does one stored value open with this key?"""
    for col in ENCRYPTED:
        c = col.table.c
        row = conn.execute(
            sa.select(*(c[k] for k in col.key), c[col.column].label("blob"))
            .where(c[col.column].is_not(None))
            .limit(1)
        ).first()
        if row is not None:
            try:
                cipher.decrypt(row.blob, col.aad(row))
            except DecryptionError:
                return False
            return True
    return True


def _insert(conn: Connection, key: MasterKey, state: str, wrapped: bytes | None) -> None:
    conn.execute(
        t.master_keys.insert().values(
            key_id=key.key_id,
            state=state,
            check_enc=Cipher(key).check_value(),
            wrapped_enc=wrapped,
            created_at=datetime.now(UTC),
            retired_at=None,
        )
    )


def check_master_key(engine: Engine, cipher: Cipher) -> None:
    """Refuse to go on unless ``cipher`` holds this database's master key (start-up check).

    A fresh database records the key's check value. Raises ``ConfigurationError`` with what to
    do. With the active key as an old key and a new one as the master, a rotation begins.
    """
    for attempt in range(2):
        try:
            with engine.begin() as conn:
                _check(conn, cipher)
            return
        except DBIntegrityError:
            # Replicas starting together race to record the first key; the loser checks again.
            if attempt:
                raise


def _check(conn: Connection, cipher: Cipher) -> None:
    records = key_records(conn)
    if not records:
        _record_first_key(conn, cipher)
        return
    active = next((r for r in records.values() if r.state == ACTIVE), None)
    if active is None:
        raise ConfigurationError(
            "The database's master_keys table has no active key; it may be damaged: restore "
            "it from a backup."
        )
    _warn_of_retired_old_keys(cipher, records)
    record = records.get(cipher.key_id)
    if record is not None:
        _check_own_record(cipher, record, active)
        adopt_next_key(conn, cipher, records)
        return
    _check_old_key(cipher, active)
    begin_rotation(conn, cipher, records)


def _record_first_key(conn: Connection, cipher: Cipher) -> None:
    """A database without check values: record ``cipher``'s, unless its data is under another."""
    if has_data(conn) and not _sample_opens(conn, cipher):
        raise ConfigurationError(
            f"The master key (id {cipher.key_id}) does not open the data in this database: start "
            "with the key it was created with (SECUREKEY_MASTER_KEY, "
            "SECUREKEY_MASTER_KEY_FILE, or master.key from your backup)."
        )
    _insert(conn, cipher.master, ACTIVE, None)
    log.info("recorded the check value of master key %s", cipher.key_id)


def _warn_of_retired_old_keys(cipher: Cipher, records: dict[str, KeyRecord]) -> None:
    for extra in cipher.previous:
        rec = records.get(extra.key_id)
        if rec is not None and rec.state == RETIRED:
            log.warning(
                "The old master key %s was retired by a master-key rotation; remove it from "
                "SECUREKEY_OLD_MASTER_KEY[_FILE].",
                extra.key_id,
            )


def _check_own_record(cipher: Cipher, record: KeyRecord, active: KeyRecord) -> None:
    """The master key is known here: it must not be retired, and must open its check value."""
    mine = cipher.key_id
    if record.state == RETIRED:
        when = record.retired_at.date().isoformat() if record.retired_at else "an earlier date"
        raise ConfigurationError(
            f"The master key {mine} was retired by a master-key rotation on {when}: start with "
            f"the current master key (id {active.key_id}) in SECUREKEY_MASTER_KEY or "
            "SECUREKEY_MASTER_KEY_FILE."
        )
    if record.check_enc is None or not cipher.opens_check_value(mine, record.check_enc):
        raise ConfigurationError(
            f"The master key {mine} does not open its check value: the database's "
            "master_keys table may be damaged; restore it from a backup."
        )
    if record.state == NEXT and not cipher.holds(active.key_id):
        raise ConfigurationError(
            f"A master-key rotation to this key is under way and not every value is "
            f"re-encrypted yet: also give the old key (id {active.key_id}) as "
            "SECUREKEY_OLD_MASTER_KEY, or let `securekey master-key rotate` finish first."
        )


def _check_old_key(cipher: Cipher, active: KeyRecord) -> None:
    """A new master key: the active one must be among the old keys given, and open its check."""
    old = _held(cipher, active.key_id)
    if old is None:
        raise ConfigurationError(
            f"The master key (id {cipher.key_id}) is not this database's (id {active.key_id}): "
            "start with the key it was created with (SECUREKEY_MASTER_KEY, "
            "SECUREKEY_MASTER_KEY_FILE, or master.key from your backup)."
        )
    if active.check_enc is None or not Cipher(old).opens_check_value(
        active.key_id, active.check_enc
    ):
        raise ConfigurationError(
            f"The old master key {active.key_id} does not open its check value: the "
            "database's master_keys table may be damaged; restore it from a backup."
        )


def adopt_next_key(conn: Connection, cipher: Cipher, records: dict[str, KeyRecord]) -> bool:
    """If a rotation is under way, write under its new key from now on; True if it switched."""
    target = next((r for r in records.values() if r.state == NEXT), None)
    if target is None or target.key_id == cipher.key_id:
        return False
    key = _held(cipher, target.key_id)
    if key is None:
        if target.wrapped_enc is None:
            return False
        key = cipher.unwrap(target.key_id, target.wrapped_enc)
    cipher.adopt(key)
    log.warning("master-key rotation under way: now encrypting under master key %s", target.key_id)
    return True


def begin_rotation(conn: Connection, cipher: Cipher, records: dict[str, KeyRecord]) -> None:
    """Record ``cipher.master`` as the next key, wrapped under the active one.

    Raises ``ConfigurationError`` if another rotation is under way or the active key is not held.
    """
    active = next(r for r in records.values() if r.state == ACTIVE)
    pending = next((r for r in records.values() if r.state == NEXT), None)
    if pending is not None and pending.key_id != cipher.key_id:
        raise ConfigurationError(
            f"A master-key rotation to key {pending.key_id} is under way: finish it with that "
            "key first (securekey master-key rotate --new-key-file FILE)."
        )
    old = _held(cipher, active.key_id)
    if old is None:
        raise ConfigurationError(
            f"The current master key (id {active.key_id}) is needed to rotate: set "
            "SECUREKEY_MASTER_KEY (or SECUREKEY_MASTER_KEY_FILE) to it."
        )
    if pending is None:
        _insert(conn, cipher.master, NEXT, Cipher(old).wrap(cipher.master))
        log.warning("master-key rotation begun: from %s to %s", active.key_id, cipher.key_id)


def _rows(conn: Connection, col: EncryptedColumn, after: Any, limit: int) -> list[Any]:
    c = col.table.c
    keys = [c[k] for k in col.key]
    query = (
        sa.select(*keys, c[col.column].label("blob"))
        .where(c[col.column].is_not(None))
        .order_by(*keys)
        .limit(limit)
    )
    if after is not None:
        query = query.where(sa.tuple_(*keys) > sa.tuple_(*after))
    return list(conn.execute(query))


def _scan(
    engine: Engine, col: EncryptedColumn, batch_size: int
) -> Iterator[tuple[Connection, list[Any]]]:
    """Each batch of rows in its own transaction (a write transaction, so SQLite queues it)."""
    after = None
    while True:
        with engine.begin() as conn:
            rows = _rows(conn, col, after, batch_size)
            if not rows:
                return
            yield conn, rows
        after = tuple(getattr(rows[-1], k) for k in col.key)


def census(engine: Engine, batch_size: int = 1000) -> dict[str, int]:
    """How many stored values each master key id holds (``legacy`` for the pre-id format)."""
    counts: dict[str, int] = {}
    for col in ENCRYPTED:
        for _conn, rows in _scan(engine, col, batch_size):
            for row in rows:
                key = Cipher.key_id_of(row.blob) or "legacy"
                counts[key] = counts.get(key, 0) + 1
    return counts


@dataclass
class Progress:
    """What a re-encryption pass did: values looked at, values rewritten, batches run."""

    scanned: int = 0
    rewritten: int = 0
    batches: int = 0
    complete: bool = False


def reencrypt(
    engine: Engine,
    cipher: Cipher,
    *,
    batch_size: int = 500,
    max_batches: int | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> Progress:
    """Re-encrypt, in batches of one transaction each, every value not under ``cipher.master``.

    Idempotent and resumable: values already under the new key are skipped. A value changed by
    a server meanwhile is left alone (compare-and-swap on the old ciphertext); it is written
    under the new key anyway. Stops after ``max_batches`` with ``complete`` False.
    """
    done = Progress()
    for col in ENCRYPTED:
        c = col.table.c
        for conn, rows in _scan(engine, col, batch_size):
            if max_batches is not None and done.batches >= max_batches:
                return done
            for row in rows:
                if cipher.is_current(row.blob):
                    continue
                fresh = cipher.reencrypt(row.blob, col.aad(row))
                where = [c[k] == getattr(row, k) for k in col.key]
                result = conn.execute(
                    col.table.update()
                    .where(*where, c[col.column] == row.blob)
                    .values({col.column: fresh})
                )
                done.rewritten += result.rowcount
            done.scanned += len(rows)
            done.batches += 1
            if on_batch is not None:
                on_batch(len(rows))
    done.complete = True
    return done


def finish_rotation(engine: Engine, cipher: Cipher) -> None:
    """Make ``cipher.master`` the active key and retire every other (check value dropped)."""
    with engine.begin() as conn:
        conn.execute(
            t.master_keys.update()
            .where(t.master_keys.c.key_id != cipher.key_id, t.master_keys.c.state != RETIRED)
            .values(state=RETIRED, check_enc=None, wrapped_enc=None, retired_at=datetime.now(UTC))
        )
        conn.execute(
            t.master_keys.update()
            .where(t.master_keys.c.key_id == cipher.key_id)
            .values(state=ACTIVE, wrapped_enc=None)
        )
