"""Tokens: keyed digests, where each token came from, and tombstones of revoked operator tokens.

Existing digests are plain SHA-256 and are marked ``sha256``; the store converts them to the
keyed form (HMAC-SHA256 of that SHA-256, under a key derived from the master key) when it
opens, since only it knows the master key. Environment and first-start operator tokens are
recognised by the descriptions earlier versions gave them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from securekey.store.tables import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(
            sa.Column("hash_scheme", sa.String(16), nullable=False, server_default="sha256")
        )
        batch.add_column(sa.Column("source", sa.String(16), nullable=False, server_default="api"))
        batch.add_column(sa.Column("revoked_at", UTCDateTime(), nullable=True))
    tokens = sa.table(
        "tokens",
        sa.column("kind", sa.String),
        sa.column("description", sa.String),
        sa.column("source", sa.String),
    )
    op.execute(
        tokens.update()
        .where(tokens.c.kind == "operator", tokens.c.description == "from SECUREKEY_OPERATOR_TOKEN")
        .values(source="env")
    )
    op.execute(
        tokens.update()
        .where(tokens.c.kind == "operator", tokens.c.description == "first start")
        .values(source="generated")
    )
    # The defaults only fill existing rows: every new row says what it is.
    with op.batch_alter_table("tokens") as batch:
        batch.alter_column("hash_scheme", server_default=None)
        batch.alter_column("source", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("revoked_at")
        batch.drop_column("source")
        batch.drop_column("hash_scheme")
