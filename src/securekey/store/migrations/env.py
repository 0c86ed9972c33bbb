"""Alembic environment: runs on the connection ``securekey.store.migrate`` passes in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from securekey.store.tables import metadata

connection: Connection | None = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - we always pass a connection
    raise RuntimeError("Run migrations through securekey.store.migrate.upgrade().")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
