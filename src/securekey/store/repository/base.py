"""What every part of the SQL repository shares: the open connection, the cipher, the notices
and events of the transaction, and the two query helpers (one row, many rows).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import ColumnElement, Connection, RowMapping, Select, Table
from sqlalchemy.dialects.postgresql import ARRAY

from securekey.crypto import Cipher
from securekey.domain.models import AuditEvent
from securekey.services.ports import ReleaseNotice
from securekey.store.notices import announce

__all__ = ["RepositoryBase", "looks_like_uuid", "where_given"]

T = TypeVar("T")
Q = TypeVar("Q", bound=Select[Any])

#: (dialect, table, columns, keys) -> the bulk statement's text, built once per process.
_BULK_SQL: dict[tuple[str, str, tuple[str, ...], tuple[str, ...]], str] = {}
#: (dialect, table, column) -> how SQLAlchemy would convert a value bound to that column.
_PROCESSORS: dict[tuple[str, str, str], Callable[[Any], Any] | None] = {}
_MISSING = object()


def looks_like_uuid(ref: str) -> bool:
    """Whether ``ref`` is an id rather than a name (names never have four dashes at 36)."""
    return len(ref) == 36 and ref.count("-") == 4


def where_given(query: Q, *filters: tuple[ColumnElement[Any], object]) -> Q:
    """``query`` narrowed to rows whose column equals the value, for each value that is not None."""
    for column, value in filters:
        if value is not None:
            query = query.where(column == value)
    return query


class RepositoryBase:
    """One open connection and transaction; the parts in this package add the queries."""

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

    def _one(self, query: Select[Any], mapper: Callable[[RowMapping], T]) -> T | None:
        """The first row of ``query`` through ``mapper``; None if there is none."""
        row = self.conn.execute(query).mappings().first()
        return None if row is None else mapper(row)

    def _all(self, query: Select[Any], mapper: Callable[[RowMapping], T]) -> list[T]:
        """Every row of ``query`` through ``mapper``, in the query's order."""
        # ``all()`` fetches in one driver call; iterating fetches row by row.
        return [mapper(row) for row in self.conn.execute(query).mappings().all()]

    def _among(self, column: sa.Column[Any], values: Collection[Any]) -> ColumnElement[bool]:
        """``column IN values``; on PostgreSQL ``column = ANY(:array)``, one parameter.

        An ``IN`` of a thousand ids is a different statement text for every batch size, which
        the driver parses afresh (a regex over the whole text) and never prepares.
        """
        if self._pg:
            array = sa.bindparam(None, list(values), type_=ARRAY(column.type))
            return column == sa.any_(array)
        return column.in_(list(values))

    def _bulk_insert(self, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert ``rows`` (dicts with the same keys, named like columns) in one statement.

        A batch of rotations writes thousands of rows per table. Going through the Core
        ``insert()`` costs a parameter set built per row, and on PostgreSQL one protocol
        message per row; here each column's values are converted once by the column's own
        type (the same conversion Core applies) and sent as one array per column
        (PostgreSQL ``INSERT … SELECT FROM unnest(…)``, one round trip) or as one
        ``executemany`` of plain tuples (SQLite, whose loop runs in C).
        """
        if rows:
            self._bulk(table, tuple(rows[0]), (), rows)

    def _bulk_update(
        self, table: Table, keys: tuple[str, ...], rows: Sequence[Mapping[str, Any]]
    ) -> None:
        """Update, for each of ``rows``, the row of ``table`` whose ``keys`` columns match it,
        setting its other entries; one statement (see ``_bulk_insert``)."""
        if rows:
            columns = tuple(c for c in rows[0] if c not in keys)
            self._bulk(table, columns, keys, rows)

    def _bulk(
        self,
        table: Table,
        columns: tuple[str, ...],
        keys: tuple[str, ...],
        rows: Sequence[Mapping[str, Any]],
    ) -> None:
        dialect = self.conn.dialect
        names = columns + keys
        values = [self._converted(table, name, [row[name] for row in rows]) for name in names]
        sql = _BULK_SQL.get((dialect.name, table.name, columns, keys))
        if sql is None:
            sql = _bulk_sql(table, columns, keys, dialect)
            _BULK_SQL[(dialect.name, table.name, columns, keys)] = sql
        if self._pg:
            self.conn.exec_driver_sql(sql, {f"p{i}": v for i, v in enumerate(values)})
        else:
            self.conn.exec_driver_sql(sql, list(zip(*values, strict=True)))

    def _converted(self, table: Table, name: str, values: list[Any]) -> list[Any]:
        """``values`` of column ``name`` as Core would bind them (equal values converted once)."""
        where = (self.conn.dialect.name, table.name, name)
        if where not in _PROCESSORS:
            # The dialect's own type (SQLite: DATETIME as fixed-width text), as Core binds it.
            dialect = self.conn.dialect
            _PROCESSORS[where] = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        process = _PROCESSORS[where]
        if process is None:
            return values
        seen: dict[Any, Any] = {}
        out = []
        for value in values:
            done = seen.get(value, _MISSING)
            if done is _MISSING:
                done = seen[value] = process(value)
            out.append(done)
        return out

    def _announce(self, *notices: ReleaseNotice) -> None:
        """Tell this process's listeners after the commit and, on PostgreSQL, other replicas."""
        announce(self.conn, self._notices, notices)

    def _by_ref(
        self, table: Table, ref: str, lock: bool, mapper: Callable[[RowMapping], T]
    ) -> T | None:
        """The row of ``table`` whose id or name is ``ref``; locked if asked (PostgreSQL)."""
        col = table.c.id if looks_like_uuid(ref) else table.c.name
        query = sa.select(table).where(col == ref)
        return self._one(self._locking(query) if lock else query, mapper)

    def _locking(self, query: Q, *, skip_locked: bool = False) -> Q:
        """``query`` with ``FOR UPDATE`` on PostgreSQL (SQLite has one writer: nothing to lock)."""
        return query.with_for_update(skip_locked=skip_locked) if self._pg else query

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


def _bulk_sql(table: Table, columns: tuple[str, ...], keys: tuple[str, ...], dialect: Any) -> str:
    """The text of a bulk insert (no ``keys``) or update (set ``columns`` where ``keys`` match).

    Only names from our own table definitions, quoted, go into the text; every value is bound
    (hence the ``noqa: S608`` below).
    """
    quote = dialect.identifier_preparer.quote
    name = quote(table.name)
    if dialect.name == "postgresql":
        names = columns + keys
        arrays = ", ".join(
            f"%(p{i})b::{table.c[c].type.compile(dialect=dialect)}[]" for i, c in enumerate(names)
        )
        if not keys:
            listed = ", ".join(quote(c) for c in columns)
            return f"INSERT INTO {name} ({listed}) SELECT * FROM unnest({arrays})"  # noqa: S608
        aliases = ", ".join(f"v{i}" for i in range(len(names)))
        sets = ", ".join(f"{quote(c)} = v.v{i}" for i, c in enumerate(columns))
        match = " AND ".join(
            f"{name}.{quote(c)} = v.v{len(columns) + i}" for i, c in enumerate(keys)
        )
        return f"UPDATE {name} SET {sets} FROM unnest({arrays}) AS v({aliases}) WHERE {match}"  # noqa: S608
    if not keys:
        listed = ", ".join(quote(c) for c in columns)
        marks = ", ".join("?" for _ in columns)
        return f"INSERT INTO {name} ({listed}) VALUES ({marks})"  # noqa: S608
    sets = ", ".join(f"{quote(c)} = ?" for c in columns)
    match = " AND ".join(f"{quote(c)} = ?" for c in keys)
    return f"UPDATE {name} SET {sets} WHERE {match}"  # noqa: S608
