"""What every part of the SQL repository shares: the open connection, the cipher, the notices
and events of the transaction, and the two query helpers (one row, many rows).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import ColumnElement, Connection, RowMapping, Select, Table

from securekey.crypto import Cipher
from securekey.domain.models import AuditEvent
from securekey.services.ports import ReleaseNotice
from securekey.store.notices import announce

__all__ = ["RepositoryBase", "looks_like_uuid", "where_given"]

T = TypeVar("T")
Q = TypeVar("Q", bound=Select[Any])


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
        return [mapper(row) for row in self.conn.execute(query).mappings()]

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
