"""The schema as SQLAlchemy Core tables; Alembic migrations create exactly this.

Secrets live only in ``*_enc`` columns as AES-256-GCM ciphertext. Times are UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

__all__ = [
    "UTCDateTime",
    "addons",
    "apps",
    "attachments",
    "audit_events",
    "config_vars",
    "key_versions",
    "master_keys",
    "metadata",
    "releases",
    "server_secrets",
    "tokens",
    "webhook_deliveries",
    "webhooks",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC on every backend; hands back aware UTC datetimes."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


ID = String(36)


def _id() -> Column[str]:
    """The primary key of a table whose rows have a UUID of their own."""
    return Column("id", ID, primary_key=True)


def _app_id(*, nullable: bool = False, index: bool | None = None) -> Column[str]:
    """The app a row belongs to: it goes when the app goes."""
    fk = ForeignKey("apps.id", ondelete="CASCADE")
    return Column("app_id", ID, fk, nullable=nullable, index=index)


def _times() -> tuple[Column[datetime], Column[datetime]]:
    """``created_at`` and ``updated_at``, both required."""
    return (
        Column("created_at", UTCDateTime, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
    )


apps = Table(
    "apps",
    metadata,
    _id(),
    Column("name", String(30), nullable=False, unique=True),
    Column("release_version", Integer, nullable=False, default=0),
    *_times(),
)

config_vars = Table(
    "config_vars",
    metadata,
    Column("app_id", ID, ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("value_enc", LargeBinary, nullable=False),
)

addons = Table(
    "addons",
    metadata,
    _id(),
    Column("name", String(63), nullable=False, unique=True),
    Column("app_id", ID, ForeignKey("apps.id"), nullable=False, index=True),
    Column("plan", String(32), nullable=False),
    Column("period_seconds", Float, nullable=False),
    Column("key_version", Integer, nullable=False),
    *_times(),
    Column("last_rotated_at", UTCDateTime, nullable=False),
    # The scheduler's only query walks this index: a tick costs the same at any table size.
    Column("next_rotation_at", UTCDateTime, nullable=False, index=True),
)

key_versions = Table(
    "key_versions",
    metadata,
    Column("addon_id", ID, ForeignKey("addons.id", ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("fingerprint", String(12), nullable=False),
    Column("state", String(16), nullable=False),
    # NULL once the key leaves service: history keeps fingerprints and times, never material.
    Column("material_enc", LargeBinary, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("retired_at", UTCDateTime, nullable=True),
)

attachments = Table(
    "attachments",
    metadata,
    _id(),
    Column("addon_id", ID, ForeignKey("addons.id", ondelete="CASCADE"), nullable=False, index=True),
    _app_id(),
    Column("name", String(60), nullable=False),
    *_times(),
    UniqueConstraint("app_id", "name"),
)

releases = Table(
    "releases",
    metadata,
    _id(),
    _app_id(),
    Column("version", Integer, nullable=False),
    Column("description", Text, nullable=False),
    Column("config_fingerprint", String(16), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("app_id", "version"),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column(
        "seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("id", ID, nullable=False, unique=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(64), nullable=False, index=True),
    Column("target_type", String(32), nullable=False),
    Column("target_id", ID, nullable=False, index=True),
    Column("target_name", String(200), nullable=False),
    Column("details", Text, nullable=False),
)

tokens = Table(
    "tokens",
    metadata,
    _id(),
    Column("kind", String(16), nullable=False),
    _app_id(nullable=True, index=True),
    # HMAC-SHA256 (key derived from the master key) of the token's SHA-256: a dumped database
    # alone does not let anyone test guesses of a weak SECUREKEY_OPERATOR_TOKEN offline.
    Column("token_hash", String(64), nullable=False, unique=True),
    # "hmac-sha256"; "sha256" for a digest stored before keying (converted at start).
    Column("hash_scheme", String(16), nullable=False),
    # api, env (SECUREKEY_OPERATOR_TOKEN), generated (first start), offline.
    Column("source", String(16), nullable=False),
    Column("description", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime, nullable=True),
    # Set on a revoked operator token: its digest stays so the same value cannot return.
    Column("revoked_at", UTCDateTime, nullable=True),
)

webhooks = Table(
    "webhooks",
    metadata,
    _id(),
    _app_id(index=True),
    Column("url", Text, nullable=False),
    Column("include", Text, nullable=False),
    Column("level", String(16), nullable=False),
    Column("secret_enc", LargeBinary, nullable=False),
    Column("authorization_enc", LargeBinary, nullable=True),
    *_times(),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    _id(),
    Column(
        "webhook_id", ID, ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    _app_id(index=True),
    Column("event_id", ID, nullable=False),
    Column("include", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("num_attempts", Integer, nullable=False),
    # Indexed: the delivery worker's only query, like the scheduler's.
    Column("next_attempt_at", UTCDateTime, nullable=True, index=True),
    Column("last_code", Integer, nullable=True),
    Column("last_error", String(200), nullable=True),
    *_times(),
)

# The master keys this database has known, by id. ``check_enc`` (a constant encrypted under the
# key) lets a start-up prove it holds the right key; ``wrapped_enc`` carries the next key,
# encrypted under the active one, to running replicas while a master-key rotation is under way.
master_keys = Table(
    "master_keys",
    metadata,
    Column("key_id", String(16), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("check_enc", LargeBinary, nullable=True),
    Column("wrapped_enc", LargeBinary, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("retired_at", UTCDateTime, nullable=True),
)

# Secrets of the server itself, encrypted under the master key like every other secret and
# re-encrypted with them on a master-key rotation. ``token-digest`` is the key token digests
# are made under: it must outlive any one master key, or rotating the master key would make
# every stored token digest unreachable.
server_secrets = Table(
    "server_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value_enc", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)
