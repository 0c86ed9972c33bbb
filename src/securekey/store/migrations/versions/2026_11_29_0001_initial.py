"""Initial schema: apps, config vars, add-ons, key versions, attachments, releases, audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from securekey.store.tables import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "apps",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(30), nullable=False),
        sa.Column("release_version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_apps"),
        sa.UniqueConstraint("name", name="uq_apps_name"),
    )
    op.create_table(
        "config_vars",
        sa.Column("app_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("value_enc", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name="fk_config_vars_app_id_apps", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("app_id", "name", name="pk_config_vars"),
    )
    op.create_table(
        "addons",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("app_id", sa.String(36), nullable=False),
        sa.Column("plan", sa.String(32), nullable=False),
        sa.Column("period_seconds", sa.Float(), nullable=False),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("last_rotated_at", UTCDateTime(), nullable=False),
        sa.Column("next_rotation_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["app_id"], ["apps.id"], name="fk_addons_app_id_apps"),
        sa.PrimaryKeyConstraint("id", name="pk_addons"),
        sa.UniqueConstraint("name", name="uq_addons_name"),
    )
    op.create_index("ix_addons_app_id", "addons", ["app_id"])
    op.create_index("ix_addons_next_rotation_at", "addons", ["next_rotation_at"])
    op.create_table(
        "key_versions",
        sa.Column("addon_id", sa.String(36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(12), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("material_enc", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("retired_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["addon_id"], ["addons.id"], name="fk_key_versions_addon_id_addons", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("addon_id", "version", name="pk_key_versions"),
    )
    op.create_table(
        "attachments",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("addon_id", sa.String(36), nullable=False),
        sa.Column("app_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(60), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["addon_id"], ["addons.id"], name="fk_attachments_addon_id_addons", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name="fk_attachments_app_id_apps", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_attachments"),
        sa.UniqueConstraint("app_id", "name", name="uq_attachments_app_id_name"),
    )
    op.create_index("ix_attachments_addon_id", "attachments", ["addon_id"])
    op.create_table(
        "releases",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("app_id", sa.String(36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("config_fingerprint", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name="fk_releases_app_id_apps", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_releases"),
        sa.UniqueConstraint("app_id", "version", name="uq_releases_app_id_version"),
    )
    op.create_table(
        "audit_events",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target_type", sa.String(32), nullable=False),
        sa.Column("target_id", sa.String(36), nullable=False),
        sa.Column("target_name", sa.String(200), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_events"),
        sa.UniqueConstraint("id", name="uq_audit_events_id"),
    )
    op.create_index("ix_audit_events_action", "audit_events", ["action"])
    op.create_index("ix_audit_events_target_id", "audit_events", ["target_id"])


def downgrade() -> None:
    for table in (
        "audit_events",
        "releases",
        "attachments",
        "key_versions",
        "addons",
        "config_vars",
        "apps",
    ):
        op.drop_table(table)
