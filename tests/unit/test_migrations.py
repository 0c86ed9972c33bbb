"""The Alembic migrations build exactly the schema the code declares, on both backends."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from securekey.store import make_engine, upgrade
from securekey.store.migrate import alembic_config
from securekey.store.tables import metadata


def _diff(url: str) -> list[Any]:
    engine = make_engine(url)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            ctx = MigrationContext.configure(
                conn,
                opts={"compare_type": True, "compare_server_default": True},
            )
            return list(compare_metadata(ctx, metadata))
    finally:
        engine.dispose()


def test_migrated_schema_equals_the_declared_tables(db_url: str) -> None:
    """After `alembic upgrade head` autogenerate finds no difference with tables.metadata."""
    assert _diff(db_url) == []


def test_a_drifted_schema_is_detected(db_url: str) -> None:
    """The comparison is sensitive: a missing index on a migrated database shows up as a diff."""
    engine = make_engine(db_url)
    try:
        upgrade(engine)
        with engine.begin() as conn:
            conn.execute(sa.text("DROP INDEX ix_addons_next_rotation_at"))
    finally:
        engine.dispose()
    diffs = _diff(db_url)
    assert any(d[0] == "add_index" and d[1].name == "ix_addons_next_rotation_at" for d in diffs)


def test_migrations_are_idempotent_and_at_head(db_url: str) -> None:
    """Running the upgrade twice is harmless and leaves the database at the single head."""
    script_heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert len(script_heads) == 1, "migrations must form one line, not branches"
    engine = make_engine(db_url)
    try:
        upgrade(engine)
        upgrade(engine)
        with engine.connect() as conn:
            heads = MigrationContext.configure(conn).get_current_heads()
        assert heads == tuple(script_heads)
    finally:
        engine.dispose()
