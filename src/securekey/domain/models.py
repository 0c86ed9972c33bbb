"""The entities: apps, add-ons, attachments, releases, key versions and audit events.

Plain frozen records. None holds key material: pairs travel separately as ``KeyPair``.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from securekey.domain.names import attachment_var_name
from securekey.domain.plans import SERVICE
from securekey.exceptions import RefusedError

__all__ = [
    "Addon",
    "App",
    "Attachment",
    "AuditEvent",
    "AuditQuery",
    "Delivery",
    "KeyState",
    "KeyVersion",
    "Principal",
    "Release",
    "Token",
    "TokenKind",
    "Webhook",
    "check_transition",
    "new_id",
]


def new_id() -> str:
    """A fresh UUID in its canonical text form, as the Heroku API uses for ``id``."""
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class App:
    """A service that consumes config vars; ``release`` is its current release number."""

    id: str
    name: str
    created_at: datetime
    updated_at: datetime
    release: int = 0


@dataclass(frozen=True, slots=True)
class Addon:
    """One rotating key pair, billed to ``app_id``, rotating every ``period``."""

    id: str
    name: str
    app_id: str
    plan: str
    period: timedelta
    created_at: datetime
    updated_at: datetime
    last_rotated_at: datetime
    next_rotation_at: datetime
    key_version: int = 2

    @property
    def plan_full_name(self) -> str:
        """e.g. ``securekey:fortnightly``."""
        return f"{SERVICE}:{self.plan}"


@dataclass(frozen=True, slots=True)
class Attachment:
    """An add-on seen from one app under ``name``; it sets the config var ``NAME_KEY``."""

    id: str
    addon_id: str
    app_id: str
    name: str
    created_at: datetime
    updated_at: datetime

    @property
    def var_name(self) -> str:
        """The config var this attachment sets on its app."""
        return attachment_var_name(self.name)


@dataclass(frozen=True, slots=True)
class Release:
    """One config change on one app; ``config_fingerprint`` names the snapshot, not its values."""

    id: str
    app_id: str
    version: int
    description: str
    config_fingerprint: str
    actor: str
    created_at: datetime


class KeyState(enum.StrEnum):
    """Where a key version stands. Only LATEST and PREVIOUS keep material."""

    LATEST = "latest"
    PREVIOUS = "previous"
    RETIRED = "retired"  # rotated out normally
    REVOKED = "revoked"  # replaced by an emergency rotation


_TRANSITIONS: dict[KeyState, frozenset[KeyState]] = {
    KeyState.LATEST: frozenset({KeyState.PREVIOUS, KeyState.REVOKED, KeyState.RETIRED}),
    KeyState.PREVIOUS: frozenset({KeyState.RETIRED, KeyState.REVOKED}),
    KeyState.RETIRED: frozenset(),
    KeyState.REVOKED: frozenset(),
}


def check_transition(old: KeyState, new: KeyState) -> None:
    """Refuse a key state change the lifecycle does not allow (e.g. RETIRED back to LATEST)."""
    if new not in _TRANSITIONS[old]:
        raise RefusedError(f"A key cannot go from {old.value} to {new.value}.")


@dataclass(frozen=True, slots=True)
class KeyVersion:
    """History of one key of an add-on: fingerprint, state and times; never material."""

    addon_id: str
    version: int
    fingerprint: str
    state: KeyState
    created_at: datetime
    retired_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """Who did what to which target, when; ``details`` carry names and fingerprints only."""

    id: str
    at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str
    target_name: str
    details: dict[str, str] = field(default_factory=dict)
    #: Position in the log (set by the store when read back; 0 before it is written).
    seq: int = 0


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Which audit events to read: every given field narrows the answer, ``None`` means any.

    ``action`` is one action name or a tuple of several (any of them); ``target`` matches a
    target's name or id; ``app`` also finds events whose details name the app (attach,
    detach); ``since`` is inclusive, ``until`` exclusive; ``after_seq``/``before_seq`` page.
    Oldest first unless ``newest_first``; at most ``limit`` events.
    """

    action: str | tuple[str, ...] | None = None
    target_id: str | None = None
    limit: int | None = None
    actor: str | None = None
    target: str | None = None
    target_type: str | None = None
    app: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after_seq: int | None = None
    before_seq: int | None = None
    newest_first: bool = False


class TokenKind(enum.StrEnum):
    """Operator tokens manage everything; app tokens read and watch one app's config vars."""

    OPERATOR = "operator"
    APP = "app"


@dataclass(frozen=True, slots=True)
class Token:
    """A stored token: only a keyed digest of its value is kept, never the value.

    ``source`` says where it came from (``api``, ``env`` for ``SECUREKEY_OPERATOR_TOKEN``,
    ``generated`` at first start, ``offline`` from ``securekey server operator-token``);
    ``hash_scheme`` is ``hmac-sha256``, or ``sha256`` for a digest stored before keying.
    A revoked operator token stays as a tombstone (``revoked_at``) so it cannot come back.
    """

    id: str
    kind: TokenKind
    app_id: str | None
    token_hash: str = field(repr=False)
    description: str
    created_at: datetime
    last_used_at: datetime | None = None
    source: str = "api"
    hash_scheme: str = "hmac-sha256"
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an operator, or a service holding an app token for ``app_id``."""

    kind: TokenKind
    token_id: str
    app_id: str | None = None

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return "operator" if self.kind is TokenKind.OPERATOR else f"app-token:{self.token_id}"


@dataclass(frozen=True, slots=True)
class Webhook:
    """An app webhook in Heroku's shape: POSTs signed events of ``include`` kinds to ``url``."""

    id: str
    app_id: str
    url: str
    include: tuple[str, ...]
    level: str
    secret: str = field(repr=False)
    created_at: datetime = field(compare=False)
    updated_at: datetime = field(compare=False)
    #: Heroku's optional ``authorization``: sent as the Authorization header of each delivery.
    authorization: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event on its way to one webhook, retried with backoff until it succeeds or gives up."""

    id: str
    webhook_id: str
    app_id: str
    event_id: str
    include: str
    payload: str = field(repr=False)
    status: str  # pending, retrying, succeeded, failed
    num_attempts: int
    next_attempt_at: datetime | None
    last_code: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
