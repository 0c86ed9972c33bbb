"""Engines for the two backends: embedded SQLite (WAL) and PostgreSQL (psycopg 3).

SQLite writes start with ``BEGIN IMMEDIATE`` so writers queue instead of failing midway, and
reads use plain ``BEGIN`` so WAL lets them run beside a writer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError

from securekey.exceptions import ConfigurationError

__all__ = ["make_engine", "normalise_url", "sqlite_url"]

WRITE_OPTION = "securekey_write"

#: Seconds to wait for PostgreSQL to accept a connection before the request answers 503.
CONNECT_TIMEOUT = 5
#: Seconds to wait for a free pooled connection.
POOL_TIMEOUT = 10
#: No statement of ours runs longer than this on PostgreSQL (a rotation is a few row writes).
STATEMENT_TIMEOUT_MS = 30_000


def sqlite_url(path: Path) -> str:
    """The URL of the SQLite file at ``path``."""
    return f"sqlite:///{path}"


def normalise_url(url: str) -> URL:
    """Parse a database URL; ``postgres://`` and ``postgresql://`` use psycopg 3."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigurationError(
            "The database URL is not valid; use sqlite:///PATH or postgresql://USER@HOST/DB."
        ) from None
    backend = parsed.get_backend_name()
    if backend in ("postgres", "postgresql"):
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        return parsed
    raise ConfigurationError(f"Unsupported database {backend!r}: use SQLite or PostgreSQL.")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``, tuned for its backend."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, connect_args={"timeout": 30}, **kwargs)
        _tune_sqlite(engine)
        return engine
    # Bounded waits, so an unreachable or stuck database is an error (503) within seconds and
    # never a request that hangs: connecting, waiting for a pooled connection, each statement.
    connect_args = {
        "connect_timeout": CONNECT_TIMEOUT,
        "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
    }
    return create_engine(
        parsed,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=10,
        pool_timeout=POOL_TIMEOUT,
        connect_args=connect_args,
        **kwargs,
    )


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide where transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION, True)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
