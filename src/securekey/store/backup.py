"""Backups: an online, consistent snapshot in which secrets stay encrypted; restore into empty.

On SQLite a backup is a SQLite file made with SQLite's online backup API. On PostgreSQL (or on
request) it is JSON lines: a header, every row of every table read in one REPEATABLE READ
transaction, and an end line with the counts (a truncated file is refused). Either restores
into either backend. Files are written 0600 and atomically (temporary file, fsync, rename).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Engine, Table

from securekey.crypto import Cipher
from securekey.exceptions import ConfigurationError, DecryptionError
from securekey.store import tables as t
from securekey.store.engine import make_engine, sqlite_url
from securekey.store.master_keys import ACTIVE, ENCRYPTED, has_data
from securekey.store.migrate import upgrade

__all__ = ["FORMAT", "backup", "restore"]

FORMAT = "securekey-backup"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_CHUNK = 500


def _revision(conn: Connection) -> str | None:
    heads = MigrationContext.configure(conn).get_current_heads()
    return heads[0] if heads else None


def _private_temp(path: Path) -> Path:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return tmp


def _commit_file(tmp: Path, path: Path) -> None:
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def backup(engine: Engine, path: Path, *, jsonl: bool | None = None) -> dict[str, int]:
    """Write a consistent snapshot of the database to ``path``; the row count per table."""
    if path.is_dir():
        raise ConfigurationError(f"{path} is a directory: give the backup file's name.")
    if not path.parent.is_dir():
        raise ConfigurationError(f"The directory {path.parent} does not exist.")
    as_jsonl = engine.dialect.name != "sqlite" if jsonl is None else jsonl
    tmp = _private_temp(path)
    try:
        counts = _backup_jsonl(engine, tmp) if as_jsonl else _backup_sqlite(engine, tmp)
        _commit_file(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return counts


def _backup_sqlite(engine: Engine, tmp: Path) -> dict[str, int]:
    raw = engine.raw_connection()
    try:
        source = raw.driver_connection
        assert isinstance(source, sqlite3.Connection)
        target = sqlite3.connect(tmp)
        try:
            # One consistent snapshot, taken while writers go on (they wait at most a step).
            source.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")
        finally:
            target.close()
    finally:
        raw.close()
    copy = make_engine(sqlite_url(tmp))
    try:
        with copy.connect() as conn:
            return _counts(conn)
    finally:
        copy.dispose()


def _counts(conn: Connection) -> dict[str, int]:
    return {
        table.name: int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
        for table in t.metadata.sorted_tables
    }


def _encode(table: Table, row: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for col in table.columns:
        value = row[col.name]
        if isinstance(value, bytes):
            value = base64.b64encode(value).decode()
        elif isinstance(value, datetime):
            value = value.isoformat()
        out[col.name] = value
    return out


def _decode(table: Table, data: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for col in table.columns:
        value = data.get(col.name)
        if value is not None and isinstance(col.type, sa.LargeBinary):
            value = base64.b64decode(value)
        elif value is not None and isinstance(col.type, t.UTCDateTime):
            value = datetime.fromisoformat(value)
        row[col.name] = value
    return row


def _backup_jsonl(engine: Engine, tmp: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    conn = engine.connect()
    if engine.dialect.name == "postgresql":
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
    try:
        with conn.begin(), tmp.open("w", encoding="utf-8") as out:
            header = {
                "format": FORMAT,
                "version": 1,
                "schema": _revision(conn),
                "backend": engine.dialect.name,
                "created_at": datetime.now(UTC).isoformat(),
            }
            out.write(json.dumps(header) + "\n")
            for table in t.metadata.sorted_tables:
                counts[table.name] = 0
                query = sa.select(table).order_by(*table.primary_key.columns)
                for row in conn.execute(query).mappings():
                    line = {"table": table.name, "row": _encode(table, row)}
                    out.write(json.dumps(line, separators=(",", ":")) + "\n")
                    counts[table.name] += 1
            out.write(json.dumps({"end": True, "counts": counts}) + "\n")
    finally:
        conn.close()
    return counts


class _Source:
    """The rows of a backup file, table by table in dependency order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tmpdir: str | None = None
        try:
            with path.open("rb") as fh:
                magic = fh.read(len(_SQLITE_MAGIC))
        except OSError as exc:
            raise ConfigurationError(f"Cannot read the backup {path}: {exc.strerror}.") from None
        self.sqlite = magic == _SQLITE_MAGIC
        if self.sqlite:
            # Work on a private copy: an older backup is migrated to this version's schema.
            self._tmpdir = tempfile.mkdtemp(prefix="securekey-restore-")
            copy = Path(self._tmpdir) / "backup.db"
            shutil.copyfile(path, copy)
            self.engine = make_engine(sqlite_url(copy))
            try:
                upgrade(self.engine)
            except sa.exc.DBAPIError:
                self.close()
                raise ConfigurationError(f"{path} is not a securekey backup.") from None
        else:
            self._check_jsonl()

    def _check_jsonl(self) -> None:
        with self.path.open("r", encoding="utf-8") as fh:
            first = fh.readline()
            last = ""
            for line in fh:
                last = line
        try:
            header, end = json.loads(first), json.loads(last)
        except ValueError:
            raise ConfigurationError(f"{self.path} is not a securekey backup.") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ConfigurationError(f"{self.path} is not a securekey backup.")
        if not isinstance(end, dict) or end.get("end") is not True:
            raise ConfigurationError(
                f"The backup {self.path} is incomplete (no end line): take a new one."
            )
        self.schema = header.get("schema")

    def check_schema(self, target: Connection) -> None:
        if not self.sqlite and self.schema != _revision(target):
            raise ConfigurationError(
                f"The backup's schema ({self.schema}) differs from this version's "
                f"({_revision(target)}): restore it with the securekey version that made it."
            )

    def rows(self, table: Table) -> Iterator[dict[str, Any]]:
        if self.sqlite:
            with self.engine.connect() as conn:
                query = sa.select(table).order_by(*table.primary_key.columns)
                for row in conn.execute(query).mappings():
                    yield dict(row)
            return
        with self.path.open("r", encoding="utf-8") as fh:
            yield from self._jsonl_rows(fh, table)

    @staticmethod
    def _jsonl_rows(fh: IO[str], table: Table) -> Iterator[dict[str, Any]]:
        fh.readline()
        for line in fh:
            item = json.loads(line)
            if item.get("table") == table.name:
                yield _decode(table, item["row"])

    def close(self) -> None:
        if self.sqlite:
            self.engine.dispose()
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)


def _check_key(source: _Source, cipher: Cipher) -> None:
    """Refuse a master key that does not open the backup (check value, or one stored value)."""
    keys = list(source.rows(t.master_keys))
    active = next((k for k in keys if k["state"] == ACTIVE), None)
    if active is not None:
        if not cipher.opens_check_value(active["key_id"], active["check_enc"] or b""):
            raise ConfigurationError(
                f"The master key (id {cipher.key_id}) does not open this backup, whose key is "
                f"{active['key_id']}: set SECUREKEY_MASTER_KEY (or SECUREKEY_MASTER_KEY_FILE) "
                "to the key in use when the backup was taken."
            )
        return
    for col in ENCRYPTED:
        for row in source.rows(col.table):
            blob = row[col.column]
            if blob is None:
                continue
            try:
                cipher.decrypt(blob, col.aad(_Row(row)))
            except DecryptionError:
                raise ConfigurationError(
                    f"The master key (id {cipher.key_id}) does not open this backup: set "
                    "SECUREKEY_MASTER_KEY to the key in use when the backup was taken."
                ) from None
            return


class _Row:
    def __init__(self, data: dict[str, Any]) -> None:
        self.__dict__.update(data)


def restore(path: Path, engine: Engine, cipher: Cipher) -> dict[str, int]:
    """Load the backup at ``path`` into the empty, migrated database of ``engine``."""
    source = _Source(path)
    try:
        with engine.connect() as conn:
            if has_data(conn):
                raise ConfigurationError(
                    "The database is not empty: restore only into an empty one (a new "
                    "--data-dir, or a new PostgreSQL database)."
                )
            source.check_schema(conn)
        _check_key(source, cipher)
        counts: dict[str, int] = {}
        with engine.begin() as conn:
            for table in t.metadata.sorted_tables:
                counts[table.name] = 0
                chunk: list[dict[str, Any]] = []
                for row in source.rows(table):
                    chunk.append(row)
                    if len(chunk) >= _CHUNK:
                        conn.execute(table.insert(), chunk)
                        counts[table.name] += len(chunk)
                        chunk = []
                if chunk:
                    conn.execute(table.insert(), chunk)
                    counts[table.name] += len(chunk)
            if engine.dialect.name == "postgresql":
                # Rows came with their sequence numbers; new events must follow them.
                conn.execute(
                    sa.text(
                        "SELECT setval(pg_get_serial_sequence('audit_events', 'seq'), "
                        "COALESCE(MAX(seq), 0) + 1, false) FROM audit_events"
                    )
                )
        return counts
    finally:
        source.close()
