"""Tokens: the operator's, and app-scoped ones for services. Only their SHA-256 is stored.

A token is 256 random bits in URL-safe base64 behind a prefix saying its kind, so a leaked one
is easy to recognise in a scanner (``sko_`` operator, ``ska_`` app).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from securekey.domain.clock import Clock, SystemClock
from securekey.domain.models import AuditEvent, Principal, Token, TokenKind, new_id
from securekey.exceptions import AuthenticationError, NotFoundError, ValidationError
from securekey.services.ports import Store

__all__ = ["TokenService", "hash_token"]

_PREFIX = {TokenKind.OPERATOR: "sko_", TokenKind.APP: "ska_"}
_MAX_TOKEN = 256


def hash_token(raw: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(raw.encode()).hexdigest()


def _new_raw(kind: TokenKind) -> str:
    return _PREFIX[kind] + secrets.token_urlsafe(32)


class TokenService:
    """Creates, lists, revokes and checks tokens."""

    def __init__(self, store: Store, clock: Clock | None = None) -> None:
        self.store = store
        self.clock: Clock = clock or SystemClock()

    def ensure_operator_token(self, value: str | None = None) -> str | None:
        """Make sure an operator token exists.

        With ``value`` (``SECUREKEY_OPERATOR_TOKEN``), that token is accepted from now on and
        nothing is returned. Without it, a first start creates one and returns it, once.
        """
        now = self.clock.now()
        with self.store.transaction() as tx:
            if value is not None:
                if len(value) < 16 or len(value) > _MAX_TOKEN or not value.isprintable():
                    raise ValidationError(
                        "SECUREKEY_OPERATOR_TOKEN",
                        "SECUREKEY_OPERATOR_TOKEN must be 16 to 256 printable characters.",
                    )
                if tx.find_token(hash_token(value)) is None:
                    tx.add_token(
                        Token(
                            new_id(),
                            TokenKind.OPERATOR,
                            None,
                            hash_token(value),
                            "from SECUREKEY_OPERATOR_TOKEN",
                            now,
                        )
                    )
                return None
            if tx.list_tokens(kind=TokenKind.OPERATOR.value):
                return None
            raw = _new_raw(TokenKind.OPERATOR)
            token = Token(new_id(), TokenKind.OPERATOR, None, hash_token(raw), "first start", now)
            tx.add_token(token)
            tx.add_event(
                AuditEvent(
                    new_id(),
                    now,
                    "server",
                    "token.create",
                    "token",
                    token.id,
                    "operator",
                    {"kind": "operator"},
                )
            )
            return raw

    def create_operator_token(self, description: str = "operator") -> tuple[Token, str]:
        """A new operator token (e.g. to replace a lost one); returns it once."""
        now = self.clock.now()
        raw = _new_raw(TokenKind.OPERATOR)
        token = Token(new_id(), TokenKind.OPERATOR, None, hash_token(raw), description[:200], now)
        with self.store.transaction() as tx:
            tx.add_token(token)
            tx.add_event(
                AuditEvent(
                    new_id(),
                    now,
                    "server",
                    "token.create",
                    "token",
                    token.id,
                    "operator",
                    {"kind": "operator"},
                )
            )
        return token, raw

    def create_app_token(
        self, app_ref: str, description: object = None, *, actor: str = "operator"
    ) -> tuple[Token, str]:
        """A token that can read and watch ``app_ref``'s config vars only; returned once."""
        if description is not None and not isinstance(description, str):
            raise ValidationError("description", "description must be a string.")
        text = (description or "").strip()
        if len(text) > 200 or "\x00" in text:
            raise ValidationError("description", "description must be at most 200 characters.")
        now = self.clock.now()
        raw = _new_raw(TokenKind.APP)
        with self.store.transaction() as tx:
            app = tx.get_app(app_ref) if "\x00" not in app_ref else None
            if app is None:
                raise NotFoundError("app", app_ref)
            token = Token(new_id(), TokenKind.APP, app.id, hash_token(raw), text, now)
            tx.add_token(token)
            tx.add_event(
                AuditEvent(
                    new_id(),
                    now,
                    actor,
                    "token.create",
                    "app",
                    app.id,
                    app.name,
                    {"token": token.id},
                )
            )
        return token, raw

    def list_app_tokens(self, app_ref: str) -> list[Token]:
        """An app's tokens (metadata only)."""
        with self.store.transaction(write=False) as tx:
            app = tx.get_app(app_ref) if "\x00" not in app_ref else None
            if app is None:
                raise NotFoundError("app", app_ref)
            return tx.list_tokens(app_id=app.id)

    def revoke_app_token(self, app_ref: str, token_id: str, *, actor: str = "operator") -> Token:
        """Delete one of an app's tokens; it stops working at once."""
        now = self.clock.now()
        with self.store.transaction() as tx:
            app = tx.get_app(app_ref) if "\x00" not in app_ref else None
            if app is None:
                raise NotFoundError("app", app_ref)
            found = [t for t in tx.list_tokens(app_id=app.id) if t.id == token_id]
            if not found:
                raise NotFoundError("token", token_id)
            tx.delete_token(token_id)
            tx.add_event(
                AuditEvent(
                    new_id(),
                    now,
                    actor,
                    "token.revoke",
                    "app",
                    app.id,
                    app.name,
                    {"token": token_id},
                )
            )
            return found[0]

    def authenticate(self, raw: str | None) -> Principal:
        """Who holds ``raw``; ``AuthenticationError`` when missing or unknown."""
        if not raw:
            raise AuthenticationError("Missing credentials: send Authorization: Bearer <token>.")
        if len(raw) > _MAX_TOKEN or "\x00" in raw:
            raise AuthenticationError("Invalid credentials provided.")
        digest = hash_token(raw)
        with self.store.transaction(write=False) as tx:
            token = tx.find_token(digest)
        if token is None or not hmac.compare_digest(token.token_hash, digest):
            raise AuthenticationError("Invalid credentials provided.")
        return Principal(token.kind, token.id, token.app_id)
