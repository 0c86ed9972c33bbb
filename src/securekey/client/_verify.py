"""Checking an incoming request: a presented key (bearer) or a signature, against a key ring.

Framework-free: the ASGI and WSGI middleware, and any other server, call ``Verifier``.
A well-formed key or fingerprint the ring does not know triggers one ring refresh before the
request is refused, so a client that learned of a rotation first is not turned away. Only one
request waits for each refresh; when none may start yet the request is refused at once, with
``retry_after`` saying when the refresh that follows has probably finished.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from securekey.client._errors import VerificationError
from securekey.client._ring import KeyRing
from securekey.client._signing import (
    SIGNATURE_HEADER,
    ReplayCache,
    ReplayCacheProtocol,
    Signature,
    _canonical,
    canonical_host,
)
from securekey.domain.keys import Key, KeyPair, Slot

__all__ = ["DEFAULT_KEY_HEADER", "Mode", "Verified", "Verifier"]

#: Where a bearer key travels by default: ``Authorization: Bearer <LATEST>``.
DEFAULT_KEY_HEADER = "Authorization"

Mode = Literal["bearer", "signed"]
_KEY = re.compile(r"[0-9A-Fa-f]{64}")
_SIGNATURE_NAME = SIGNATURE_HEADER.lower()


class _Mac(Protocol):
    def copy(self) -> _Mac: ...
    def update(self, msg: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...


def _keyed(key: bytes) -> _Mac:
    """An HMAC-SHA256 state keyed with ``key``, to ``copy`` once per message.

    The OpenSSL object ``hmac.new`` wraps, when there is one: copying it directly skips the
    Python wrapper (a third of the HMAC's time per signed request).
    """
    try:
        from _hashlib import hmac_new
    except ImportError:  # pragma: no cover - a Python built without OpenSSL
        return hmac.new(key, digestmod=hashlib.sha256)
    return hmac_new(key, digestmod="sha256")


@dataclass(frozen=True, slots=True)
class Verified:
    """An accepted request: how it proved itself, with which key, and the LATEST in force."""

    mode: Mode
    slot: Slot
    keyid: str
    latest: Key

    @property
    def stale(self) -> bool:
        """True when the client used PREVIOUS and should move to LATEST."""
        return self.slot == "previous"


class _Signed:
    """A signed request that passed the header, clock and host checks; its HMAC is next."""

    __slots__ = ("body", "host", "method", "signature", "target")

    def __init__(
        self, signature: Signature, method: str, target: str, body: bytes, host: str
    ) -> None:
        self.signature, self.method, self.target = signature, method, target
        self.body, self.host = body, host


#: What ``_prepare`` makes of a request: the presented key (not yet validated), or a signature.
_Attempt = str | _Signed


class _Keys:
    """One pair readied for checking, once per pair the ring holds rather than per request.

    The hex of both keys, their fingerprints, an HMAC-SHA256 state keyed with each (copied per
    signature, so the key schedule is not recomputed), and the four possible ``Verified``
    answers (immutable, so shared). Its repr names fingerprints only.
    """

    __slots__ = (
        "bearer_latest",
        "bearer_previous",
        "latest_fp",
        "latest_hex",
        "latest_mac",
        "pair",
        "previous_fp",
        "previous_hex",
        "previous_mac",
        "signed_latest",
        "signed_previous",
    )

    def __init__(self, pair: KeyPair) -> None:
        latest, previous = pair.latest, pair.previous
        self.pair = pair
        self.latest_hex, self.previous_hex = latest.hex, previous.hex
        self.latest_fp, self.previous_fp = latest.fingerprint, previous.fingerprint
        self.latest_mac = _keyed(latest.bytes)
        self.previous_mac = _keyed(previous.bytes)
        self.bearer_latest = Verified("bearer", "latest", self.latest_fp, latest)
        self.bearer_previous = Verified("bearer", "previous", self.previous_fp, latest)
        self.signed_latest = Verified("signed", "latest", self.latest_fp, latest)
        self.signed_previous = Verified("signed", "previous", self.previous_fp, latest)

    def bearer(self, presented: str) -> Verified | None:
        """Which key ``presented`` is (any case), LATEST then PREVIOUS, or None.

        ``KeyPair.match``'s rule: both keys are compared, in constant time, so the time taken
        says neither which matched nor how much did. Only ASCII can match: ``str.upper`` on
        other text can produce hex digits (``"\ufb00".upper() == "FF"``), which the format
        check refuses, so such a value goes on to that check unmatched.
        """
        if not presented.isascii():
            return None
        upper = presented.upper()
        latest = hmac.compare_digest(self.latest_hex, upper)
        previous = hmac.compare_digest(self.previous_hex, upper)
        if latest:
            return self.bearer_latest
        if previous:
            return self.bearer_previous
        return None

    def signed(self, attempt: _Signed) -> Verified | None:
        """The key the signature names, if it is one of the pair's, having signed the request.

        None when the key id is neither key's fingerprint (public names, LATEST first);
        VerificationError("bad_signature") when it is, but the HMAC differs (constant time).
        """
        signature = attempt.signature
        if hmac.compare_digest(self.latest_fp, signature.keyid):
            mac, verified = self.latest_mac.copy(), self.signed_latest
        elif hmac.compare_digest(self.previous_fp, signature.keyid):
            mac, verified = self.previous_mac.copy(), self.signed_previous
        else:
            return None
        mac.update(
            _canonical(
                attempt.method,
                attempt.host,
                attempt.target,
                signature.timestamp,
                signature.nonce,
                attempt.body,
            )
        )
        if not hmac.compare_digest(mac.hexdigest(), signature.sig):
            raise VerificationError("bad_signature", "The request signature does not match.")
        return verified

    def __repr__(self) -> str:
        return f"_Keys(latest={self.latest_fp!r}, previous={self.previous_fp!r})"


class Verifier:
    """Accepts a request carrying LATEST or PREVIOUS, as a bearer key or as a signature.

    ``header`` names where the bearer key travels: ``Authorization`` (as ``Bearer <key>``, the
    default) or any other header holding the bare key, e.g. ``X-Securekey-Key``. ``modes``
    picks what is accepted; ``window`` bounds signature timestamp skew, in seconds, both ways.
    ``hosts`` lists the authorities this service answers to (e.g. ``orders.internal:8001``):
    a signed request whose (signed) Host is not one of them is refused, so a request signed
    for another service that shares the key cannot be replayed here. ``replay_cache``
    remembers accepted signatures: this process's memory by default, or a shared one
    (``ReplayCacheProtocol``, e.g. ``KeyValueReplayCache``) for several workers or replicas.
    """

    def __init__(
        self,
        ring: KeyRing,
        *,
        header: str = DEFAULT_KEY_HEADER,
        modes: Collection[Mode] = ("bearer", "signed"),
        window: float = 300.0,
        replay_cache: ReplayCacheProtocol | None = None,
        clock: Callable[[], float] = time.time,
        hosts: Collection[str] | None = None,
    ) -> None:
        if not modes or not set(modes) <= {"bearer", "signed"}:
            raise ValueError("modes must be a non-empty subset of {'bearer', 'signed'}")
        if hosts is not None and (isinstance(hosts, str) or not hosts):
            raise ValueError("hosts must be a non-empty collection of host[:port] names")
        self.ring = ring
        self.header = header
        self.modes = frozenset(modes)
        self.window = window
        self.hosts = None if hosts is None else frozenset(canonical_host(h) for h in hosts)
        self.replays: ReplayCacheProtocol = (
            replay_cache if replay_cache is not None else ReplayCache()
        )
        self._clock = clock
        self._header_key = header.lower()
        self._bearer = self._header_key == "authorization"
        self._accepts_bearer = "bearer" in self.modes
        self._accepts_signed = "signed" in self.modes
        self._bearer_first = self._bearer and self._accepts_bearer
        self._ready = _Keys(ring.current)
        self._last_host = ("", "")  # a Host header as sent, and as signed (canonical_host)

    def wants_body(self, headers: Mapping[str, str]) -> bool:
        """Whether verifying needs the request body (a signed request in a signed mode)."""
        return "signed" in self.modes and any(k.lower() == "securekey-signature" for k in headers)

    def _keys(self) -> _Keys:
        """The ring's current pair, readied (again only when the ring swapped it)."""
        pair = self.ring.current
        ready = self._ready
        if ready.pair is not pair:
            ready = self._ready = _Keys(pair)
        return ready

    def _prepare(
        self,
        method: str,
        target: str,
        raw: str | None,
        signed: str | None,
        host: str | None,
        body: bytes,
    ) -> _Attempt:
        if signed is not None and self._accepts_signed:
            signature = Signature.parse(signed)
            skew = abs(self._clock() - signature.timestamp)
            if skew > self.window:
                raise VerificationError(
                    "stale",
                    f"The request's timestamp is {int(skew)} s away from the server's clock "
                    f"(allowed: {int(self.window)} s).",
                )
            host = host or ""
            seen, canonical = self._last_host  # most requests name the same host
            if host != seen:
                canonical = canonical_host(host)
                self._last_host = (host, canonical)
            if self.hosts is not None and canonical not in self.hosts:
                raise VerificationError(
                    "wrong_host",
                    f"This request was signed for host {canonical or '(none)'!r}, which is not "
                    "this service.",
                )
            return _Signed(signature, method, target, body, canonical)
        if raw is not None and self._accepts_bearer:
            if not self._bearer:
                key = raw.strip()
            elif raw.startswith("Bearer "):  # the usual spelling: what the general parse gives
                key = raw[7:].strip()
            else:
                scheme, _, key = raw.strip().partition(" ")
                if scheme.lower() != "bearer":
                    raise VerificationError("malformed", "Authorization must be 'Bearer <key>'.")
                key = key.strip()
            # The format (64 hex digits) is checked only if the key matches neither of the
            # pair's (see ``_unknown``): a key that matches has it already.
            return key
        if signed is not None:
            raise VerificationError(
                "missing",
                f"Signed requests ({SIGNATURE_HEADER}) are not accepted here; send "
                f"{self.header}: {'Bearer <key>' if self._bearer else '<key>'}.",
            )
        wanted_list = []
        if self._accepts_bearer:
            wanted_list.append(f"{self.header}: {'Bearer <key>' if self._bearer else '<key>'}")
        if self._accepts_signed:
            wanted_list.append(SIGNATURE_HEADER)
        raise VerificationError("missing", f"Missing credentials: send {' or '.join(wanted_list)}.")

    @staticmethod
    def _try(attempt: _Attempt, keys: _Keys) -> Verified | None:
        if isinstance(attempt, str):
            return keys.bearer(attempt)
        return keys.signed(attempt)

    def _unknown(self, attempt: _Attempt) -> bool:
        """Whether a request no key matched may be refreshed for; raises if it is malformed."""
        if isinstance(attempt, str) and not _KEY.fullmatch(attempt):
            raise VerificationError("malformed", "A key is 64 hexadecimal characters.")
        return self.ring.can_refresh

    @staticmethod
    def _refused(attempt: _Attempt, retry_after: float | None) -> VerificationError:
        if isinstance(attempt, str):
            return VerificationError("unknown_key", "Unknown key.", retry_after=retry_after)
        return VerificationError(
            "unknown_key",
            f"Unknown key id {attempt.signature.keyid!r}.",
            retry_after=retry_after,
        )

    def verify(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes = b""
    ) -> Verified:
        """Accept the request or raise VerificationError; may wait for one ring refresh.

        ``target`` is the path and query exactly as sent; ``body`` matters for signatures only.
        """
        # Header names in any case, the last spelling winning; inline, this is the hot path.
        wanted = self._header_key
        raw = signed = host = None
        for name, value in headers.items():
            name = name.lower()
            if name == wanted:
                raw = value
            if name == _SIGNATURE_NAME:
                signed = value
            if name == "host":
                host = value
        ready = self._ready
        if ready.pair is not self.ring.current:
            ready = self._keys()
        # The common case first: "Authorization: Bearer <a key of the pair>", no signature
        # that would take precedence. Anything else, or no match, takes the full path below.
        if (
            raw is not None
            and self._bearer_first
            and (signed is None or not self._accepts_signed)
            and raw.startswith("Bearer ")
            and (fast := ready.bearer(raw[7:].strip())) is not None
        ):
            return fast
        attempt = self._prepare(method, target, raw, signed, host, body)
        result = ready.bearer(attempt) if isinstance(attempt, str) else ready.signed(attempt)
        if result is None:
            retry_after = None
            if self._unknown(attempt):
                retry_after = self.ring.try_refresh()
                result = self._try(attempt, self._keys())
            if result is None:
                raise self._refused(attempt, retry_after)
        if isinstance(attempt, _Signed) and not self.replays.remember(
            attempt.signature, now=self._clock(), window=self.window
        ):
            raise _replayed()
        return result

    async def averify(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes = b""
    ) -> Verified:
        """``verify`` for coroutines: the refresh does not block the event loop."""
        # The same steps as ``verify`` up to the refresh, written out again on purpose: a shared
        # helper costs the bearer check one call frame, +18 % in bench/verify.py (2026-12-02).
        # Header names in any case, the last spelling winning; inline, this is the hot path.
        wanted = self._header_key
        raw = signed = host = None
        for name, value in headers.items():
            name = name.lower()
            if name == wanted:
                raw = value
            if name == _SIGNATURE_NAME:
                signed = value
            if name == "host":
                host = value
        ready = self._ready
        if ready.pair is not self.ring.current:
            ready = self._keys()
        # The common case first: "Authorization: Bearer <a key of the pair>", no signature
        # that would take precedence. Anything else, or no match, takes the full path below.
        if (
            raw is not None
            and self._bearer_first
            and (signed is None or not self._accepts_signed)
            and raw.startswith("Bearer ")
            and (fast := ready.bearer(raw[7:].strip())) is not None
        ):
            return fast
        attempt = self._prepare(method, target, raw, signed, host, body)
        result = ready.bearer(attempt) if isinstance(attempt, str) else ready.signed(attempt)
        if result is None:
            retry_after = None
            if self._unknown(attempt):
                retry_after = await self.ring.atry_refresh()
                result = self._try(attempt, self._keys())
            if result is None:
                raise self._refused(attempt, retry_after)
        if isinstance(attempt, str):
            return result
        aremember = getattr(self.replays, "aremember", None)
        now = self._clock()
        if callable(aremember):
            fresh = bool(await aremember(attempt.signature, now=now, window=self.window))
        else:
            fresh = self.replays.remember(attempt.signature, now=now, window=self.window)
        if not fresh:
            raise _replayed()
        return result


def _replayed() -> VerificationError:
    return VerificationError("replayed", "This signed request was already received.")
