"""The handshake both middlewares speak: what an accepted or refused request's answer says.

A client that used PREVIOUS is told of LATEST (a hint, or LATEST itself when opted in).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Collection
from typing import Generic, Literal, TypeVar

from securekey.client._errors import VerificationError
from securekey.client._ring import KeyRing
from securekey.client._signing import ReplayCacheProtocol
from securekey.client._verify import DEFAULT_KEY_HEADER, Mode, Verified, Verifier

__all__ = [
    "LATEST_FINGERPRINT_HEADER",
    "LATEST_KEYID_HEADER",
    "LATEST_KEY_HEADER",
    "RETRY_AFTER_HEADER",
    "Guard",
    "Handover",
    "HandoverStats",
    "Handshake",
    "refusal",
    "too_large",
]

log = logging.getLogger("securekey.client")

#: Response header naming LATEST by fingerprint to a client that used PREVIOUS (the hint).
LATEST_FINGERPRINT_HEADER = "Securekey-Latest-Fingerprint"
#: The same hint under its earlier name, still sent to signed clients of earlier versions.
LATEST_KEYID_HEADER = "Securekey-Latest-Keyid"
#: Response header handing LATEST itself over (bearer mode, ``handover="key"`` only).
LATEST_KEY_HEADER = "Securekey-Latest-Key"
#: On a 401 for an unknown key while the ring could not refresh yet: seconds (a decimal)
#: after which the same request may pass. ``Retry-After`` carries it rounded up.
RETRY_AFTER_HEADER = "Securekey-Retry-After"

#: What a client that used PREVIOUS is given: a hint (the default), or LATEST itself.
Handover = Literal["hint", "key"]

AppT = TypeVar("AppT")


class HandoverStats:
    """What the handshake gave callers that used PREVIOUS; thread-safe counters for metrics.

    ``hints``: answers naming LATEST by fingerprint. ``keys``: answers carrying LATEST itself
    (``handover="key"`` within the window), each also logged with the caller's address.
    ``keys_declined``: ``handover="key"`` answers outside the window, given a hint instead.
    Pass one instance to the middleware (``stats=``) to read it from your app.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.hints = 0
        self.keys = 0
        self.keys_declined = 0

    def count(self, name: Literal["hints", "keys", "keys_declined"]) -> int:
        """Add one to ``name``; returns the new value."""
        with self._lock:
            value: int = getattr(self, name) + 1
            setattr(self, name, value)
            return value

    def as_dict(self) -> dict[str, int]:
        """The counters, e.g. to export as ``securekey_handovers_total{kind=...}``."""
        with self._lock:
            return {"hints": self.hints, "keys": self.keys, "keys_declined": self.keys_declined}

    def __repr__(self) -> str:
        return f"HandoverStats({self.as_dict()})"


class Handshake:
    """Decides what an accepted request's response says about LATEST (shared by both)."""

    def __init__(
        self, verifier: Verifier, handover: Handover, window: float, stats: HandoverStats | None
    ) -> None:
        if handover not in ("hint", "key"):
            raise ValueError("handover must be 'hint' or 'key'")
        if window < 0:
            raise ValueError("handover_window must not be negative")
        self.verifier, self.handover, self.window = verifier, handover, window
        self.stats = stats if stats is not None else HandoverStats()

    def headers(self, verified: Verified, client: str) -> list[tuple[str, str]]:
        """Headers to add to the response of an accepted request from ``client``."""
        if not verified.stale:
            return []
        hint = [(LATEST_FINGERPRINT_HEADER, verified.latest.fingerprint)]
        if verified.mode == "signed":
            hint.append((LATEST_KEYID_HEADER, verified.latest.fingerprint))
        if self.handover == "key" and verified.mode == "bearer":
            age = self.verifier.ring.pair_age
            if age <= self.window:
                number = self.stats.count("keys")
                log.warning(
                    "Handed LATEST %s over to %s, which presented PREVIOUS %s, %.0f s after "
                    "the pair changed (key handover #%d). If no service of yours is that "
                    "caller, PREVIOUS has leaked: rotate with --emergency.",
                    verified.latest.fingerprint,
                    client,
                    verified.keyid,
                    age,
                    number,
                )
                return [
                    *hint,
                    (LATEST_KEY_HEADER, verified.latest.hex),
                    ("Cache-Control", "no-store"),
                ]
            self.stats.count("keys_declined")
        self.stats.count("hints")
        return hint


def refusal(exc: VerificationError, verifier: Verifier) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body answering a refused request."""
    body = json.dumps({"id": exc.id, "message": exc.message, "reason": exc.reason}).encode()
    challenge = "Bearer" if "bearer" in verifier.modes else "Securekey-Signature"
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
        ("WWW-Authenticate", f'{challenge} realm="securekey"'),
        ("Cache-Control", "no-store"),
    ]
    if exc.retry_after is not None:
        headers.append((RETRY_AFTER_HEADER, f"{exc.retry_after:.3f}"))
        headers.append(("Retry-After", str(max(1, math.ceil(exc.retry_after)))))
    return 401, headers, body


def too_large(limit: int) -> tuple[int, list[tuple[str, str]], bytes]:
    message = f"A signed request body may be at most {limit} bytes."
    body = json.dumps({"id": "payload_too_large", "message": message}).encode()
    return 413, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))], body


def _make_verifier(
    ring: KeyRing | None,
    verifier: Verifier | None,
    header: str,
    modes: Collection[Mode],
    window: float,
    replay_cache: ReplayCacheProtocol | None,
    clock: Callable[[], float],
    hosts: Collection[str] | None,
) -> Verifier:
    if verifier is not None:
        return verifier
    if ring is None:
        raise TypeError("Pass a key ring (ring=...) or a verifier (verifier=...).")
    return Verifier(
        ring,
        header=header,
        modes=modes,
        window=window,
        replay_cache=replay_cache,
        clock=clock,
        hosts=hosts,
    )


class Guard(Generic[AppT]):
    """What both middlewares share: the app they guard, their verifier and their handshake."""

    def __init__(
        self,
        app: AppT,
        ring: KeyRing | None = None,
        *,
        verifier: Verifier | None = None,
        header: str = DEFAULT_KEY_HEADER,
        modes: Collection[Mode] = ("bearer", "signed"),
        window: float = 300.0,
        replay_cache: ReplayCacheProtocol | None = None,
        exempt: Collection[str] = (),
        max_body: int = 10 * 1024 * 1024,
        clock: Callable[[], float] = time.time,
        handover: Handover = "hint",
        handover_window: float = 600.0,
        stats: HandoverStats | None = None,
        hosts: Collection[str] | None = None,
    ) -> None:
        self.app = app
        self.verifier = _make_verifier(
            ring, verifier, header, modes, window, replay_cache, clock, hosts
        )
        self.exempt = frozenset(exempt)
        self.max_body = max_body
        self._handshake = Handshake(self.verifier, handover, handover_window, stats)
        self.stats = self._handshake.stats
