"""Who is calling: Bearer or Basic (token as password) credentials, checked against hashes.

Known tokens are cached briefly by their digest so the read path does not hit the database;
revocation drops the cache in this process at once. Failed attempts are counted per client
address and answered with 429 past a limit.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections import deque

from securekey.domain.models import Principal, TokenKind
from securekey.exceptions import (
    AuthenticationError,
    ForbiddenError,
    RateLimitedError,
    UnavailableError,
)
from securekey.services.tokens import TokenService, hash_token

__all__ = [
    "Authenticator",
    "FailureLimiter",
    "credentials_from_header",
    "require_app_reader",
    "require_operator",
]


def credentials_from_header(value: str | None) -> str | None:
    """The token in an ``Authorization`` header (Bearer, or Basic with the token as password)."""
    if not value:
        return None
    scheme, _, rest = value.strip().partition(" ")
    scheme = scheme.lower()
    rest = rest.strip()
    if scheme == "bearer":
        return rest or None
    if scheme == "basic":
        try:
            decoded = base64.b64decode(rest, validate=True).decode("utf-8")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise AuthenticationError("Malformed Basic credentials.") from None
        _user, _, password = decoded.partition(":")
        return password or None
    raise AuthenticationError("Unsupported authorization scheme: use Bearer or Basic.")


class FailureLimiter:
    """At most ``limit`` failed authentications per client address per ``window`` seconds."""

    def __init__(self, limit: int = 30, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, client: str) -> None:
        """Raise ``RateLimitedError`` while ``client`` is over the limit."""
        now = time.monotonic()
        with self._lock:
            seen = self._failures.get(client)
            if not seen:
                return
            while seen and now - seen[0] > self.window:
                seen.popleft()
            if len(seen) >= self.limit:
                retry = max(1, int(self.window - (now - seen[0])) + 1)
                raise RateLimitedError(
                    "Too many failed authentication attempts; try again later.",
                    retry_after=retry,
                )

    def fail(self, client: str) -> None:
        """Count one failure for ``client``."""
        with self._lock:
            if len(self._failures) > 10_000:
                self._failures.clear()
            self._failures.setdefault(client, deque(maxlen=self.limit + 1)).append(time.monotonic())


class Authenticator:
    """Turns credentials into a ``Principal``, with a short-lived cache of good tokens."""

    def __init__(self, tokens: TokenService, limiter: FailureLimiter, ttl: float = 5.0) -> None:
        self.tokens = tokens
        self.limiter = limiter
        self.ttl = ttl
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def cached(self, raw: str) -> Principal | None:
        """The principal for ``raw`` if recently verified (no database access)."""
        entry = self._cache.get(hash_token(raw))
        if entry is None or time.monotonic() - entry[1] > self.ttl:
            return None
        return entry[0]

    def try_cached(self, header: str | None, client: str) -> Principal | None:
        """The principal if these credentials were verified recently; never touches the database."""
        self.limiter.check(client)
        try:
            raw = credentials_from_header(header)
        except AuthenticationError:
            return None
        return self.cached(raw) if raw else None

    def authenticate(self, header: str | None, client: str) -> Principal:
        """Check credentials (may query the database); counts failures per ``client``."""
        self.limiter.check(client)
        try:
            raw = credentials_from_header(header)
            if raw is None:
                raise AuthenticationError(
                    "Missing credentials: send Authorization: Bearer <token>."
                )
            found = self.cached(raw)
            if found is not None:
                return found
            try:
                principal = self.tokens.authenticate(raw)
            except UnavailableError:
                # Nobody can revoke a token while the database is down: trust this process's
                # last check of it until the database is back.
                known = self._cache.get(hash_token(raw))
                if known is None:
                    raise
                return known[0]
        except AuthenticationError:
            self.limiter.fail(client)
            raise
        with self._lock:
            if len(self._cache) > 50_000:
                self._cache.clear()
            self._cache[hash_token(raw)] = (principal, time.monotonic())
        return principal

    def forget(self, token_id: str | None = None) -> None:
        """Drop cached tokens (one by id, or all)."""
        with self._lock:
            if token_id is None:
                self._cache.clear()
                return
            for digest, (principal, _) in list(self._cache.items()):
                if principal.token_id == token_id:
                    del self._cache[digest]


def require_operator(principal: Principal) -> None:
    """Only operator tokens may manage apps, add-ons, tokens and webhooks."""
    if principal.kind is not TokenKind.OPERATOR:
        raise ForbiddenError(
            "This token is scoped to one app's config vars; use an operator token."
        )


def require_app_reader(principal: Principal, app_id: str) -> None:
    """Operators, or a token of this very app."""
    if principal.kind is TokenKind.OPERATOR:
        return
    if principal.app_id != app_id:
        raise ForbiddenError("This token belongs to another app.")
