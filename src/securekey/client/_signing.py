"""Signed requests: HMAC-SHA256 under LATEST, the key named by its fingerprint, never sent.

The header and the string signed (UTF-8, lines joined by ``\\n``, no trailing newline)::

    Securekey-Signature: keyid=<12 hex fingerprint>,ts=<unix seconds>,nonce=<32 hex>,sig=<64 hex>

    securekey-v2
    <METHOD, upper case>
    <host: the Host header (authority), lower case, without :80 or :443; empty if none>
    <path and query exactly as sent, e.g. /orders?id=7>
    <ts>
    <nonce>
    <SHA-256 of the body, hex; the digest of b"" when there is none>

A signature is accepted once per replay cache: ``ReplayCache`` is one process's memory; for
several workers or replicas plug in a shared one (``ReplayCacheProtocol``), e.g.
``KeyValueReplayCache`` over a Redis-like client.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from securekey.client._errors import VerificationError
from securekey.domain.keys import Key

__all__ = [
    "SIGNATURE_HEADER",
    "SIGNATURE_VERSION",
    "KeyValueReplayCache",
    "ReplayCache",
    "ReplayCacheProtocol",
    "SetIfAbsent",
    "Signature",
    "canonical_host",
    "canonical_request",
    "sign_request",
]

SIGNATURE_HEADER = "Securekey-Signature"
SIGNATURE_VERSION = "securekey-v2"

_KEYID = re.compile(r"[0-9a-f]{12}")
_NONCE = re.compile(r"[0-9a-f]{16,64}")
_SIG = re.compile(r"[0-9a-f]{64}")
_TS = re.compile(r"[0-9]{1,12}")
#: The header exactly as ``Signature.format`` writes it: one match instead of a general parse.
#: It accepts a subset of what the general parser does and reads the same fields from it.
_FORMATTED = re.compile(
    r"keyid=([0-9a-f]{12}),ts=([0-9]{1,12}),nonce=([0-9a-f]{16,64}),sig=([0-9a-f]{64})"
)
_EMPTY_BODY_DIGEST = hashlib.sha256(b"").hexdigest()


def canonical_host(host: str) -> str:
    """A Host header as signed: trimmed, lower case, without a default port (:80, :443)."""
    value = host.strip().lower()
    if value.endswith(":80"):
        return value[:-3]
    if value.endswith(":443"):
        return value[:-4]
    return value


def canonical_request(
    method: str, target: str, timestamp: int, nonce: str, body: bytes, *, host: str = ""
) -> bytes:
    """The exact bytes that are signed (see the module docstring)."""
    return _canonical(method, canonical_host(host), target, timestamp, nonce, body)


def _canonical(
    method: str, host: str, target: str, timestamp: int, nonce: str, body: bytes
) -> bytes:
    """``canonical_request`` for a ``host`` already canonical (the verifier has it so)."""
    digest = hashlib.sha256(body).hexdigest() if body else _EMPTY_BODY_DIGEST
    return (
        f"{SIGNATURE_VERSION}\n{method.upper()}\n{host}\n{target or '/'}\n"
        f"{timestamp!s}\n{nonce}\n{digest}"
    ).encode()


@dataclass(frozen=True, slots=True)
class Signature:
    """A parsed ``Securekey-Signature`` header."""

    keyid: str
    timestamp: int
    nonce: str
    sig: str

    @classmethod
    def parse(cls, header: str) -> Signature:
        """Parse a header value; VerificationError("malformed") if it is not exactly our form."""
        formatted = _FORMATTED.fullmatch(header)
        if formatted is not None:  # what sign_request writes: no general parse needed
            keyid, ts, nonce, sig = formatted.groups()
            if cls is Signature:
                return _checked(keyid, int(ts), nonce, sig)
            return cls(keyid, int(ts), nonce, sig)
        fields: dict[str, str] = {}
        for part in header.split(","):
            name, sep, value = part.strip().partition("=")
            if not sep or name in fields:
                raise VerificationError("malformed", f"Malformed {SIGNATURE_HEADER} header.")
            fields[name] = value.strip()
        checks = {"keyid": _KEYID, "ts": _TS, "nonce": _NONCE, "sig": _SIG}
        if set(fields) != set(checks) or not all(
            rx.fullmatch(fields[name]) for name, rx in checks.items()
        ):
            raise VerificationError("malformed", f"Malformed {SIGNATURE_HEADER} header.")
        return cls(fields["keyid"], int(fields["ts"]), fields["nonce"], fields["sig"])

    def format(self) -> str:
        """The header value."""
        return f"keyid={self.keyid},ts={self.timestamp},nonce={self.nonce},sig={self.sig}"

    def matches(self, key: Key, method: str, target: str, body: bytes, *, host: str = "") -> bool:
        """Whether this signature is ``key``'s over the request, compared in constant time."""
        message = canonical_request(method, target, self.timestamp, self.nonce, body, host=host)
        return key.signed(message, self.sig)


# A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``, a third
# of the parse. Fields already checked by ``parse`` are set through the slots directly.
_SET_FIELDS = tuple(
    getattr(Signature, name).__set__ for name in ("keyid", "timestamp", "nonce", "sig")
)


def _checked(keyid: str, timestamp: int, nonce: str, sig: str) -> Signature:
    """``Signature(keyid, timestamp, nonce, sig)`` for fields ``parse`` has validated."""
    made = object.__new__(Signature)
    set_keyid, set_timestamp, set_nonce, set_sig = _SET_FIELDS
    set_keyid(made, keyid)
    set_timestamp(made, timestamp)
    set_nonce(made, nonce)
    set_sig(made, sig)
    return made


def sign_request(
    key: Key,
    method: str,
    target: str,
    body: bytes = b"",
    *,
    host: str = "",
    timestamp: int | None = None,
    nonce: str | None = None,
) -> str:
    """The ``Securekey-Signature`` header value for a request to ``host``, signed with ``key``.

    ``host`` is the authority the request is sent to (its Host header, e.g. ``orders:8001``):
    a signature made for one service is refused by another that shares the key.
    """
    ts = int(time.time()) if timestamp is None else timestamp
    once = secrets.token_hex(16) if nonce is None else nonce
    message = canonical_request(method, target, ts, once, body, host=host)
    return Signature(key.fingerprint, ts, once, key.sign(message)).format()


class ReplayCacheProtocol(Protocol):
    """What a verifier needs from a replay cache; share one to refuse replays across processes.

    ``remember`` records a signature and answers False if it was seen before (or cannot be
    proven new), atomically: of two verifiers racing on one signature, one gets True. It
    must keep each entry until ``signature.timestamp + window`` at least. A cache may also
    offer ``async def aremember(...)`` with the same meaning, which ``averify`` then awaits.
    """

    def remember(self, signature: Signature, *, now: float, window: float) -> bool:
        """Record ``signature``; False if it was seen before (or cannot be proven new)."""
        ...


class ReplayCache:
    """Signatures already accepted, kept until their timestamp leaves the window.

    One process's memory: a signature accepted here is unknown to other workers and replicas
    (see ``KeyValueReplayCache`` for a shared one).

    Bounded: when full it forgets the oldest entry and from then on refuses every signature
    at least that old, since it can no longer prove such a request new. Thread-safe.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max = max_entries
        self._seen: OrderedDict[str, tuple[float, int]] = OrderedDict()
        self._floor = -1
        # The oldest entry's expiry, so that a call with nothing to forget costs one compare.
        self._oldest_expires = math.inf
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._seen)

    def remember(self, signature: Signature, *, now: float, window: float) -> bool:
        """Record ``signature``; False if it was seen before (or cannot be proven new)."""
        timestamp, sig = signature.timestamp, signature.sig
        seen = self._seen
        with self._lock:
            if now > self._oldest_expires:
                self._forget_expired(now)
            if sig in seen or timestamp <= self._floor:
                return False
            if len(seen) >= self._max:
                _, (expired_at, ts) = seen.popitem(last=False)
                if expired_at >= now:
                    self._floor = max(self._floor, ts)
                self._oldest_expires = next(iter(seen.values()))[0] if seen else math.inf
                if timestamp <= self._floor:
                    return False
            expires = timestamp + window
            if not seen:
                self._oldest_expires = expires
            seen[sig] = (expires, timestamp)
            return True

    def _forget_expired(self, now: float) -> None:
        """Drop entries from the oldest on while they have expired (the caller holds the lock)."""
        seen = self._seen
        while seen:
            oldest, (expires, _) = next(iter(seen.items()))
            if expires >= now:
                self._oldest_expires = expires
                return
            del seen[oldest]
        self._oldest_expires = math.inf


class SetIfAbsent(Protocol):
    """The one call ``KeyValueReplayCache`` makes: redis-py's ``set(name, value, nx=, px=)``.

    Set ``name`` only if it is absent, expiring after ``px`` milliseconds; return something
    truthy if it was set, falsy (redis answers None) if it already existed.
    """

    def set(self, name: str, value: bytes, *, nx: bool, px: int) -> object:
        """Set ``name`` if absent, for ``px`` ms; truthy when it was set."""
        ...


class KeyValueReplayCache:
    """A replay cache shared through a key-value store with set-if-absent and expiry.

    ``KeyValueReplayCache(redis.Redis(...))`` works as is (securekey does not depend on
    redis); any client with the ``SetIfAbsent`` call does. Every worker and replica of a
    service, and every service sharing the key, given the same store and ``prefix``, accept
    each signature once. Store errors propagate: a request is not accepted unchecked.
    """

    def __init__(self, store: SetIfAbsent, *, prefix: str = "securekey:replay:") -> None:
        self._store, self._prefix = store, prefix

    def remember(self, signature: Signature, *, now: float, window: float) -> bool:
        """Record ``signature`` until it leaves the window; False if it was there already."""
        ttl_ms = max(1, math.ceil((signature.timestamp + window - now) * 1000))
        return bool(self._store.set(self._prefix + signature.sig, b"1", nx=True, px=ttl_ms))
