"""Tokens: operator tokens, and app-scoped ones for services. Only a keyed digest is stored.

A token is 256 random bits in URL-safe base64 behind a prefix saying its kind, so a leaked one
is easy to recognise in a scanner (``sko_`` operator, ``ska_`` app). The stored digest is
HMAC-SHA256 under a key derived from the master key (``Digester``), so a dumped database alone
does not let anyone test guesses of a weak ``SECUREKEY_OPERATOR_TOKEN`` offline.

Operator tokens are listed and revoked like app tokens. The last one cannot be revoked (that
would lock every operator out; ``securekey server operator-token create`` mints one offline).
A revoked operator token stays as a tombstone, so the same value cannot come back through
``SECUREKEY_OPERATOR_TOKEN``; a new value there replaces the previous environment token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Protocol

from securekey.domain.clock import Clock, SystemClock
from securekey.domain.models import AuditEvent, Principal, Token, TokenKind, new_id
from securekey.exceptions import (
    AuthenticationError,
    ConfigurationError,
    NotFoundError,
    RefusedError,
    ValidationError,
)
from securekey.services.ports import Repository, Store
from securekey.services.unit_of_work import UnitOfWork, find_app

__all__ = ["ENV_DESCRIPTION", "USAGE_GRANULARITY", "Digester", "TokenService"]

_PREFIX = {TokenKind.OPERATOR: "sko_", TokenKind.APP: "ska_"}
_MAX_TOKEN = 256
ENV_DESCRIPTION = "from SECUREKEY_OPERATOR_TOKEN"
#: ``last_used_at`` is written at most this often per token: coarse, so reads stay reads.
USAGE_GRANULARITY = timedelta(minutes=1)
_SCHEME = "hmac-sha256"


class Digester(Protocol):
    """Keyed digests of token SHA-256s (``securekey.crypto.Cipher`` is one)."""

    def token_digest(self, sha256_hex: str) -> str: ...


def _new_raw(kind: TokenKind) -> str:
    return _PREFIX[kind] + secrets.token_urlsafe(32)


def _description(value: object) -> str:
    if value is not None and not isinstance(value, str):
        raise ValidationError("description", "description must be a string.")
    text = (value or "").strip()
    if len(text) > 200 or "\x00" in text:
        raise ValidationError("description", "description must be at most 200 characters.")
    return text


class TokenService:
    """Creates, lists, revokes and checks tokens."""

    def __init__(self, store: Store, digester: Digester, clock: Clock | None = None) -> None:
        self.store = store
        self._digester = digester
        self.clock: Clock = clock or SystemClock()

    def digest(self, raw: str) -> str:
        """The stored form of token ``raw``."""
        return self._digester.token_digest(hashlib.sha256(raw.encode()).hexdigest())

    # ------------------------------------------------------------ operator tokens

    def ensure_operator_token(self, value: str | None = None) -> str | None:
        """Make sure an operator token exists.

        With ``value`` (``SECUREKEY_OPERATOR_TOKEN``), that token is accepted from now on and
        replaces the previous environment token, which is revoked; nothing is returned. A
        value that was revoked is refused (``ConfigurationError``). Without ``value``, a first
        start creates a token and returns it, once.
        """
        with self.store.transaction() as tx:
            if value is not None:
                self._use_env_token(tx, value)
                return None
            if tx.list_tokens(kind=TokenKind.OPERATOR.value):
                return None
            raw = _new_raw(TokenKind.OPERATOR)
            token = self._operator_token(raw, "first start", "generated")
            tx.add_token(token)
            self._audit(tx, "server", "token.create", token, {"source": "generated"})
            return raw

    def _use_env_token(self, tx: Repository, value: str) -> None:
        if len(value) < 16 or len(value) > _MAX_TOKEN or not value.isprintable():
            raise ValidationError(
                "SECUREKEY_OPERATOR_TOKEN",
                "SECUREKEY_OPERATOR_TOKEN must be 16 to 256 printable characters.",
            )
        found = tx.find_token(self.digest(value))
        if found is not None:
            if found.revoked_at is not None or found.kind is not TokenKind.OPERATOR:
                raise ConfigurationError(
                    "SECUREKEY_OPERATOR_TOKEN holds a token that was revoked (or is not an "
                    "operator token); set a new value, e.g. from `openssl rand -base64 32`."
                )
            return
        now = self.clock.now()
        for old in tx.list_tokens(kind=TokenKind.OPERATOR.value, source="env", lock=True):
            tx.revoke_token(old.id, now)
            self._audit(tx, "server", "token.revoke", old, {"reason": "replaced"})
        token = self._operator_token(value, ENV_DESCRIPTION, "env")
        tx.add_token(token)
        self._audit(tx, "server", "token.create", token, {"source": "env"})

    def create_operator_token(
        self, description: object = None, *, source: str = "api", actor: str = "operator"
    ) -> tuple[Token, str]:
        """A new operator token; its value is returned this once."""
        text = _description(description) or ("offline" if source == "offline" else "operator")
        raw = _new_raw(TokenKind.OPERATOR)
        token = self._operator_token(raw, text, source)
        with self.store.transaction() as tx:
            tx.add_token(token)
            self._audit(tx, actor, "token.create", token, {"source": source})
        return token, raw

    def list_operator_tokens(self) -> list[Token]:
        """Every operator token in service (metadata only)."""
        with self.store.transaction(write=False) as tx:
            return tx.list_tokens(kind=TokenKind.OPERATOR.value)

    def revoke_operator_token(self, token_id: str, *, actor: str = "operator") -> Token:
        """Revoke an operator token (it may be the caller's own); never the last one."""
        now = self.clock.now()
        with self.store.transaction() as tx:
            # Locked (on PostgreSQL): two revocations at once cannot both leave the other last.
            active = tx.list_tokens(kind=TokenKind.OPERATOR.value, lock=True)
            found = [t for t in active if t.id == token_id]
            if not found:
                raise NotFoundError("token", token_id)
            if len(active) == 1:
                raise RefusedError(
                    "This is the last operator token: revoking it would lock every operator "
                    "out. Create another first (securekey tokens:create --operator), then "
                    "revoke this one."
                )
            tx.revoke_token(token_id, now)
            self._audit(tx, actor, "token.revoke", found[0], {})
            return found[0]

    def _operator_token(self, raw: str, description: str, source: str) -> Token:
        return Token(
            new_id(),
            TokenKind.OPERATOR,
            None,
            self.digest(raw),
            description[:200],
            self.clock.now(),
            source=source,
            hash_scheme=_SCHEME,
        )

    def _audit(
        self, tx: Repository, actor: str, action: str, token: Token, details: dict[str, str]
    ) -> None:
        tx.add_event(
            AuditEvent(
                new_id(),
                self.clock.now(),
                actor,
                action,
                "token",
                token.id,
                token.kind.value,
                {"kind": token.kind.value, **details},
            )
        )

    # ----------------------------------------------------------------- app tokens

    def create_app_token(
        self, app_ref: str, description: object = None, *, actor: str = "operator"
    ) -> tuple[Token, str]:
        """A token that can read and watch ``app_ref``'s config vars only; returned once."""
        text = _description(description)
        raw = _new_raw(TokenKind.APP)
        with UnitOfWork(self.store, self.clock, actor=actor) as uow:
            app = uow.app(app_ref)
            token = Token(
                new_id(),
                TokenKind.APP,
                app.id,
                self.digest(raw),
                text,
                uow.now,
                hash_scheme=_SCHEME,
            )
            uow.tx.add_token(token)
            uow.audit("token.create", app, {"token": token.id})
        return token, raw

    def list_app_tokens(self, app_ref: str) -> list[Token]:
        """An app's tokens (metadata only)."""
        with self.store.transaction(write=False) as tx:
            return tx.list_tokens(app_id=find_app(tx, app_ref).id)

    def revoke_app_token(self, app_ref: str, token_id: str, *, actor: str = "operator") -> Token:
        """Delete one of an app's tokens; it stops working at once."""
        with UnitOfWork(self.store, self.clock, actor=actor) as uow:
            app = uow.app(app_ref)
            found = [t for t in uow.tx.list_tokens(app_id=app.id) if t.id == token_id]
            if not found:
                raise NotFoundError("token", token_id)
            uow.tx.delete_token(token_id)
            uow.audit("token.revoke", app, {"token": token_id})
            return found[0]

    # ------------------------------------------------------------------ checking

    def authenticate(self, raw: str | None) -> Principal:
        """Who holds ``raw``; ``AuthenticationError`` when missing, unknown or revoked."""
        if not raw:
            raise AuthenticationError("Missing credentials: send Authorization: Bearer <token>.")
        if len(raw) > _MAX_TOKEN or "\x00" in raw:
            raise AuthenticationError("Invalid credentials provided.")
        digest = self.digest(raw)
        with self.store.transaction(write=False) as tx:
            token = tx.find_token(digest)
        if (
            token is None
            or token.revoked_at is not None
            or not hmac.compare_digest(token.token_hash, digest)
        ):
            raise AuthenticationError("Invalid credentials provided.")
        return Principal(token.kind, token.id, token.app_id)

    def touch(self, token_id: str) -> None:
        """Record a use of ``token_id``: ``last_used_at`` moves at most once a minute."""
        now = self.clock.now()
        with self.store.transaction() as tx:
            tx.touch_token(token_id, now, now - USAGE_GRANULARITY)
