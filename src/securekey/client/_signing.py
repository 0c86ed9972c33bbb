"""Signed requests: HMAC-SHA256 under LATEST, the key named by its fingerprint, never sent.

The header and the string signed (UTF-8, lines joined by ``\\n``, no trailing newline)::

    Securekey-Signature: keyid=<12 hex fingerprint>,ts=<unix seconds>,nonce=<32 hex>,sig=<64 hex>

    securekey-v1
    <METHOD, upper case>
    <path and query exactly as sent, e.g. /orders?id=7>
    <ts>
    <nonce>
    <SHA-256 of the body, hex; the digest of b"" when there is none>
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from securekey.client._errors import VerificationError
from securekey.domain.keys import Key

__all__ = [
    "SIGNATURE_HEADER",
    "SIGNATURE_VERSION",
    "ReplayCache",
    "Signature",
    "canonical_request",
    "sign_request",
]

SIGNATURE_HEADER = "Securekey-Signature"
SIGNATURE_VERSION = "securekey-v1"

_KEYID = re.compile(r"[0-9a-f]{12}")
_NONCE = re.compile(r"[0-9a-f]{16,64}")
_SIG = re.compile(r"[0-9a-f]{64}")
_TS = re.compile(r"[0-9]{1,12}")


def canonical_request(method: str, target: str, timestamp: int, nonce: str, body: bytes) -> bytes:
    """The exact bytes that are signed (see the module docstring)."""
    digest = hashlib.sha256(body).hexdigest()
    lines = (SIGNATURE_VERSION, method.upper(), target or "/", str(timestamp), nonce, digest)
    return "\n".join(lines).encode("utf-8")


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

    def matches(self, key: Key, method: str, target: str, body: bytes) -> bool:
        """Whether this signature is ``key``'s over the request, compared in constant time."""
        message = canonical_request(method, target, self.timestamp, self.nonce, body)
        expected = hmac.new(key.bytes, message, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected.encode(), self.sig.encode())


def sign_request(
    key: Key,
    method: str,
    target: str,
    body: bytes = b"",
    *,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> str:
    """The ``Securekey-Signature`` header value for a request, signed with ``key``."""
    ts = int(time.time()) if timestamp is None else timestamp
    once = secrets.token_hex(16) if nonce is None else nonce
    message = canonical_request(method, target, ts, once, body)
    sig = hmac.new(key.bytes, message, hashlib.sha256).hexdigest()
    return Signature(key.fingerprint, ts, once, sig).format()


class ReplayCache:
    """Signatures already accepted, kept until their timestamp leaves the window.

    Bounded: when full it forgets the oldest entry and from then on refuses every signature
    at least that old, since it can no longer prove such a request new. Thread-safe.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max = max_entries
        self._seen: OrderedDict[str, tuple[float, int]] = OrderedDict()
        self._floor = -1
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._seen)

    def remember(self, signature: Signature, *, now: float, window: float) -> bool:
        """Record ``signature``; False if it was seen before (or cannot be proven new)."""
        expires = signature.timestamp + window
        with self._lock:
            while self._seen:
                oldest = next(iter(self._seen))
                if self._seen[oldest][0] >= now:
                    break
                del self._seen[oldest]
            if signature.sig in self._seen or signature.timestamp <= self._floor:
                return False
            if len(self._seen) >= self._max:
                _, (expired_at, ts) = self._seen.popitem(last=False)
                if expired_at >= now:
                    self._floor = max(self._floor, ts)
                if signature.timestamp <= self._floor:
                    return False
            self._seen[signature.sig] = (expires, signature.timestamp)
            return True
