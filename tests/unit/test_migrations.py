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


def test_point2_sha256_token_digests_from_before_keying_keep_working(db_url: str) -> None:
    """Tokens stored as plain SHA-256 (schema 0003) still authenticate after the upgrade, and
    the store has replaced their digests with keyed ones and marked the environment token."""
    import hashlib
    from datetime import UTC, datetime

    from securekey.crypto import Cipher, MasterKey
    from securekey.services.tokens import TokenService
    from securekey.store import SqlStore

    engine = make_engine(db_url)
    raw = {"env": "an-old-env-token-value", "generated": "sko_old_generated_token_0000"}
    try:
        upgrade(engine, "0003")
        with engine.begin() as conn:
            for (source, value), description in zip(
                raw.items(), ["from SECUREKEY_OPERATOR_TOKEN", "first start"], strict=True
            ):
                conn.execute(
                    sa.text(
                        "INSERT INTO tokens (id, kind, app_id, token_hash, description, "
                        "created_at) VALUES (:id, 'operator', NULL, :hash, :description, :at)"
                    ),
                    {
                        "id": f"00000000-0000-0000-0000-00000000000{len(source) % 10}",
                        "hash": hashlib.sha256(value.encode()).hexdigest(),
                        "description": description,
                        "at": datetime(2026, 11, 30, tzinfo=UTC).replace(tzinfo=None),
                    },
                )
    finally:
        engine.dispose()
    cipher = Cipher(MasterKey.generate())
    store = SqlStore.open(db_url, cipher)
    try:
        tokens = TokenService(store, cipher)
        for value in raw.values():
            assert tokens.authenticate(value).kind.value == "operator"
        listed = {t.source: t for t in tokens.list_operator_tokens()}
        assert set(listed) == {"env", "generated"}
        with store.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT token_hash, hash_scheme FROM tokens")).all()
        for digest, scheme in rows:
            assert scheme == "hmac-sha256"
            assert digest not in {hashlib.sha256(v.encode()).hexdigest() for v in raw.values()}
        SqlStore.open(db_url, cipher).close()  # a second open converts nothing twice
        assert tokens.authenticate(raw["env"]).kind.value == "operator"
    finally:
        store.close()
