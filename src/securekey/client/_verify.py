"""Checking an incoming request: a presented key (bearer) or a signature, against a key ring.

Framework-free: the ASGI and WSGI middleware, and any other server, call ``Verifier``.
A well-formed key or fingerprint the ring does not know triggers one ring refresh before the
request is refused, so a client that learned of a rotation first is not turned away. Only one
request waits for each refresh; when none may start yet the request is refused at once, with
``retry_after`` saying when the refresh that follows has probably finished.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Literal

from securekey.client._errors import VerificationError
from securekey.client._ring import KeyRing
from securekey.client._signing import (
    SIGNATURE_HEADER,
    ReplayCache,
    ReplayCacheProtocol,
    Signature,
    canonical_host,
)
from securekey.domain.keys import Key, KeyPair, Slot

__all__ = ["DEFAULT_KEY_HEADER", "Mode", "Verified", "Verifier"]

#: Where a bearer key travels by default: ``Authorization: Bearer <LATEST>``.
DEFAULT_KEY_HEADER = "Authorization"

Mode = Literal["bearer", "signed"]
_KEY = re.compile(r"[0-9A-Fa-f]{64}")


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


@dataclass(frozen=True, slots=True)
class _Attempt:
    mode: Mode
    key: str = ""
    signature: Signature | None = None
    method: str = ""
    target: str = ""
    body: bytes = b""
    host: str = ""


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

    def wants_body(self, headers: Mapping[str, str]) -> bool:
        """Whether verifying needs the request body (a signed request in a signed mode)."""
        return "signed" in self.modes and any(k.lower() == "securekey-signature" for k in headers)

    def _prepare(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> _Attempt:
        lower = {k.lower(): v for k, v in headers.items()}
        signed = lower.get(SIGNATURE_HEADER.lower())
        if signed is not None and "signed" in self.modes:
            signature = Signature.parse(signed)
            skew = abs(self._clock() - signature.timestamp)
            if skew > self.window:
                raise VerificationError(
                    "stale",
                    f"The request's timestamp is {int(skew)} s away from the server's clock "
                    f"(allowed: {int(self.window)} s).",
                )
            host = canonical_host(lower.get("host", ""))
            if self.hosts is not None and host not in self.hosts:
                raise VerificationError(
                    "wrong_host",
                    f"This request was signed for host {host or '(none)'!r}, which is not "
                    "this service.",
                )
            return _Attempt(
                "signed", signature=signature, method=method, target=target, body=body, host=host
            )
        raw = lower.get(self._header_key)
        if raw is not None and "bearer" in self.modes:
            key = raw.strip()
            if self._bearer:
                scheme, _, key = key.partition(" ")
                if scheme.lower() != "bearer":
                    raise VerificationError("malformed", "Authorization must be 'Bearer <key>'.")
                key = key.strip()
            if not _KEY.fullmatch(key):
                raise VerificationError("malformed", "A key is 64 hexadecimal characters.")
            return _Attempt("bearer", key=key)
        if signed is not None:
            raise VerificationError(
                "missing",
                f"Signed requests ({SIGNATURE_HEADER}) are not accepted here; send "
                f"{self.header}: {'Bearer <key>' if self._bearer else '<key>'}.",
            )
        wanted = []
        if "bearer" in self.modes:
            wanted.append(f"{self.header}: {'Bearer <key>' if self._bearer else '<key>'}")
        if "signed" in self.modes:
            wanted.append(SIGNATURE_HEADER)
        raise VerificationError("missing", f"Missing credentials: send {' or '.join(wanted)}.")

    @staticmethod
    def _try(attempt: _Attempt, pair: KeyPair) -> Verified | None:
        if attempt.signature is None:
            slot = pair.match(attempt.key)
            if slot is None:
                return None
            used = pair.latest if slot == "latest" else pair.previous
            return Verified("bearer", slot, used.fingerprint, pair.latest)
        found = pair.by_fingerprint(attempt.signature.keyid)
        if found is None:
            return None
        slot, key = found
        if not attempt.signature.matches(
            key, attempt.method, attempt.target, attempt.body, host=attempt.host
        ):
            raise VerificationError("bad_signature", "The request signature does not match.")
        return Verified("signed", slot, key.fingerprint, pair.latest)

    def _known(
        self, attempt: _Attempt, result: Verified | None, retry_after: float | None
    ) -> Verified:
        if result is None:
            if attempt.signature is not None:
                raise VerificationError(
                    "unknown_key",
                    f"Unknown key id {attempt.signature.keyid!r}.",
                    retry_after=retry_after,
                )
            raise VerificationError("unknown_key", "Unknown key.", retry_after=retry_after)
        return result

    def _finish(
        self, attempt: _Attempt, result: Verified | None, retry_after: float | None = None
    ) -> Verified:
        verified = self._known(attempt, result, retry_after)
        if attempt.signature is not None and not self.replays.remember(
            attempt.signature, now=self._clock(), window=self.window
        ):
            raise _replayed()
        return verified

    async def _afinish(
        self, attempt: _Attempt, result: Verified | None, retry_after: float | None
    ) -> Verified:
        verified = self._known(attempt, result, retry_after)
        if attempt.signature is None:
            return verified
        aremember = getattr(self.replays, "aremember", None)
        now = self._clock()
        if callable(aremember):
            fresh = bool(await aremember(attempt.signature, now=now, window=self.window))
        else:
            fresh = self.replays.remember(attempt.signature, now=now, window=self.window)
        if not fresh:
            raise _replayed()
        return verified

    def verify(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes = b""
    ) -> Verified:
        """Accept the request or raise VerificationError; may wait for one ring refresh.

        ``target`` is the path and query exactly as sent; ``body`` matters for signatures only.
        """
        attempt = self._prepare(method, target, headers, body)
        result = self._try(attempt, self.ring.current)
        retry_after = None
        if result is None and self.ring.can_refresh:
            retry_after = self.ring.try_refresh()
            result = self._try(attempt, self.ring.current)
        return self._finish(attempt, result, retry_after)

    async def averify(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes = b""
    ) -> Verified:
        """``verify`` for coroutines: the refresh does not block the event loop."""
        attempt = self._prepare(method, target, headers, body)
        result = self._try(attempt, self.ring.current)
        retry_after = None
        if result is None and self.ring.can_refresh:
            retry_after = await self.ring.atry_refresh()
            result = self._try(attempt, self.ring.current)
        return await self._afinish(attempt, result, retry_after)


def _replayed() -> VerificationError:
    return VerificationError("replayed", "This signed request was already received.")
