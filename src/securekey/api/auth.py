"""Who is calling: Bearer or Basic (token as password) credentials, checked against digests.

Known tokens are cached briefly by their digest so the read path does not hit the database;
revocation drops the cache in this process at once. Failed attempts are counted per client
address: past a limit, failures are answered 429 instead of 401. Valid credentials are never
refused by the limiter, so failures from a shared address (a NAT, an attacker next door)
cannot lock anyone out.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import logging
import threading
import time
from collections import OrderedDict, deque
from datetime import datetime

from starlette.concurrency import run_in_threadpool

from securekey.domain.models import Principal, TokenKind
from securekey.exceptions import (
    AuthenticationError,
    ForbiddenError,
    RateLimitedError,
    SecureKeyError,
    UnavailableError,
)
from securekey.services.tokens import USAGE_GRANULARITY, TokenService

__all__ = [
    "Authenticator",
    "FailureLimiter",
    "credentials_from_header",
    "one_header",
    "require_app_reader",
    "require_operator",
]

log = logging.getLogger("securekey.api")

SEVERAL_HEADERS = "Send one Authorization header, not several."


def one_header(values: list[str]) -> str | None:
    """The only ``Authorization`` header of a request; several are refused (never guessed)."""
    if len(values) > 1:
        raise AuthenticationError(SEVERAL_HEADERS)
    return values[0] if values else None


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


def client_key(address: str) -> str:
    """What the limiter counts by: the address, or its /64 for IPv6 (one host's usual share)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class FailureLimiter:
    """Failed authentications per client: past ``limit`` in ``window`` seconds they get 429.

    Only failures are counted and only failures are refused. At most ``max_clients`` clients
    are remembered; past that the one whose last failure is oldest is forgotten first, so a
    flood of addresses cannot wipe everyone's count at once.
    """

    def __init__(self, limit: int = 30, window: float = 60.0, max_clients: int = 10_000) -> None:
        self.limit = limit
        self.window = window
        self.max_clients = max_clients
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._failures)

    def fail(self, client: str, error: AuthenticationError) -> SecureKeyError:
        """Count one failure for ``client``; the error to answer it with (429 past the limit)."""
        key = client_key(client)
        now = time.monotonic()
        with self._lock:
            seen = self._failures.pop(key, None)
            if seen is None:
                seen = deque(maxlen=self.limit + 1)
            while seen and now - seen[0] > self.window:
                seen.popleft()
            seen.append(now)
            self._failures[key] = seen  # most recent failure last
            while len(self._failures) > self.max_clients:
                self._failures.popitem(last=False)
            if len(seen) <= self.limit:
                return error
            retry = max(1, int(self.window - (now - seen[0])) + 1)
        return RateLimitedError(
            "Too many failed authentication attempts from this address; try again later.",
            retry_after=retry,
        )


#: Share of the token cache's TTL after which a hit also re-checks that token in the background.
RENEW_AT = 0.8


class Authenticator:
    """Turns credentials into a ``Principal``, with a short-lived cache of good tokens."""

    def __init__(self, tokens: TokenService, limiter: FailureLimiter, ttl: float = 5.0) -> None:
        self.tokens = tokens
        self.limiter = limiter
        self.ttl = ttl
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._used: dict[str, datetime] = {}
        self._lock = threading.Lock()
        #: Moved by every ``forget``: a check that began before a revocation was heard must not
        #: put the token back in the cache after it (the read cache has the same guard).
        self._generation = 0
        #: Background re-checks under way, by digest (one per token at a time).
        self._renewing: dict[str, asyncio.Task[None]] = {}

    def cached(self, raw: str) -> Principal | None:
        """The principal for ``raw`` if recently verified (no database access).

        A hit past ``RENEW_AT`` of the TTL also checks ``raw`` again in the background, once,
        when an event loop runs here: under load the entry is renewed before it expires, so
        the requests in flight never all miss together (the read path's tail), and a token
        revoked where no notice reached this process is dropped at that check.
        """
        digest = self.tokens.digest(raw)
        entry = self._cache.get(digest)
        if entry is None:
            return None
        age = time.monotonic() - entry[1]
        if age > self.ttl:
            return None
        if age > RENEW_AT * self.ttl and digest not in self._renewing:
            self._renew_later(raw, digest)
        return entry[0]

    def checked_at(self, raw: str) -> float | None:
        """When (``time.monotonic()``) ``raw`` was last found valid in the database, if cached."""
        entry = self._cache.get(self.tokens.digest(raw))
        return None if entry is None else entry[1]

    def _renew_later(self, raw: str, digest: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a worker thread): the entry simply expires
        self._renewing[digest] = loop.create_task(self._renew(raw, digest))

    async def _renew(self, raw: str, digest: str) -> None:
        try:
            await run_in_threadpool(self.recheck, raw)
        finally:
            self._renewing.pop(digest, None)

    def recheck(self, raw: str) -> None:
        """Check cached credentials ``raw`` against the database again (blocking): renewed if
        still valid, dropped if revoked, deleted or unknown, left to expire if it cannot say."""
        digest = self.tokens.digest(raw)
        generation = self._generation
        try:
            principal = self.tokens.authenticate(raw)
        except AuthenticationError:
            with self._lock:
                self._generation += 1
                self._cache.pop(digest, None)
            return
        except Exception:  # the database is unavailable: the entry expires as it would have
            return
        with self._lock:
            if generation == self._generation and digest in self._cache:
                self._cache[digest] = (principal, time.monotonic())

    def try_cached(self, header: str | None) -> Principal | None:
        """The principal if these credentials were verified recently; never touches the database."""
        try:
            raw = credentials_from_header(header)
        except AuthenticationError:
            return None
        return self.cached(raw) if raw else None

    def refuse(self, client: str, error: AuthenticationError) -> SecureKeyError:
        """Count a failed attempt by ``client``; the error to raise (429 past the limit)."""
        return self.limiter.fail(client, error)

    def authenticate(self, header: str | None, client: str) -> Principal:
        """Check credentials (may query the database); failures count against ``client``."""
        try:
            raw = credentials_from_header(header)
            if raw is None:
                raise AuthenticationError(
                    "Missing credentials: send Authorization: Bearer <token>."
                )
            found = self.cached(raw)
            if found is not None:
                return found
            generation = self._generation
            try:
                principal = self.tokens.authenticate(raw)
            except UnavailableError:
                # Nobody can revoke a token while the database is down: trust this process's
                # last check of it until the database is back.
                known = self._cache.get(self.tokens.digest(raw))
                if known is None:
                    raise
                return known[0]
        except AuthenticationError as error:
            raise self.refuse(client, error) from None
        with self._lock:
            if len(self._cache) > 50_000:
                self._cache.clear()
            if generation == self._generation:
                self._cache[self.tokens.digest(raw)] = (principal, time.monotonic())
        self._note_use(principal)
        return principal

    def _note_use(self, principal: Principal) -> None:
        """Move the token's ``last_used_at``, at most once a minute (per process, and in SQL)."""
        now = self.tokens.clock.now()
        last = self._used.get(principal.token_id)
        if last is not None and now - last < USAGE_GRANULARITY:
            return
        with self._lock:
            if len(self._used) > 100_000:
                self._used.clear()  # only costs one extra write per token
            self._used[principal.token_id] = now
        try:
            self.tokens.touch(principal.token_id)
        except Exception as error:  # a busy database must not turn a good token away
            log.warning("could not record a token's use: %s", type(error).__name__)

    def forget(self, token_id: str | None = None) -> None:
        """Drop cached tokens (one by id, or all)."""
        with self._lock:
            self._generation += 1
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
