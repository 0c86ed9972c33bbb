"""Storage: SQLAlchemy tables, Alembic migrations, and the SQL store for SQLite and PostgreSQL."""

from securekey.store.engine import make_engine, normalise_url, sqlite_url
from securekey.store.migrate import upgrade
from securekey.store.sql import SqlRepository, SqlStore

__all__ = ["SqlRepository", "SqlStore", "make_engine", "normalise_url", "sqlite_url", "upgrade"]
