"""The seed's handshake as ASGI and WSGI middleware in front of any app.

A request carrying LATEST passes. One carrying PREVIOUS passes too, and its response gains a
hint, ``Securekey-Latest-Fingerprint: <LATEST's fingerprint>``: the client refreshes its own
ring from the securekey server with its own token, so holding an old key earns nothing. The
seed's ``Securekey-Latest-Key: <LATEST>`` is an opt-in (``handover="key"``), given only within
``handover_window`` seconds after the pair changed, and each one is counted and logged.
Anything else is answered 401 with a Heroku-style body ``{"id": "unauthorized", ...}``.
"""

from __future__ import annotations

import io
import json
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, MutableMapping
from typing import Any, Literal
from urllib.parse import quote

from securekey.client._errors import VerificationError
from securekey.client._ring import KeyRing
from securekey.client._signing import ReplayCacheProtocol
from securekey.client._verify import DEFAULT_KEY_HEADER, Mode, Verified, Verifier

__all__ = [
    "LATEST_FINGERPRINT_HEADER",
    "LATEST_KEYID_HEADER",
    "LATEST_KEY_HEADER",
    "RETRY_AFTER_HEADER",
    "Handover",
    "HandoverStats",
    "SecureKeyMiddleware",
    "SecureKeyWSGIMiddleware",
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

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_TARGET_SAFE = "/:@!$&'()*+,;=-._~%"


class _TooLarge(Exception):
    """A signed request's body exceeds ``max_body``."""


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


class _Handshake:
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


def _refusal(
    exc: VerificationError, verifier: Verifier
) -> tuple[int, list[tuple[str, str]], bytes]:
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


def _too_large(limit: int) -> tuple[int, list[tuple[str, str]], bytes]:
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


class SecureKeyMiddleware:
    """ASGI middleware: verify every HTTP and WebSocket request, tell PREVIOUS users of LATEST.

    ``scope["securekey"]`` tells the app how the request proved itself (a ``Verified``).
    ``exempt`` lists paths let through unchecked (health checks). Signed requests have their
    body read first (at most ``max_body`` bytes) and replayed to the app unchanged.
    ``handover`` is ``"hint"`` (default: the fingerprint only) or ``"key"`` (the seed's: LATEST
    itself to a bearer client, within ``handover_window`` seconds of the pair's change, counted
    in ``stats`` and logged with the caller's address). ``hosts`` and ``replay_cache``: see
    ``Verifier``.
    """

    def __init__(
        self,
        app: ASGIApp,
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
        self._handshake = _Handshake(self.verifier, handover, handover_window, stats)
        self.stats = self._handshake.stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket") or scope.get("path") in self.exempt:
            await self.app(scope, receive, send)
            return
        headers: dict[str, str] = {}
        for name, value in scope.get("headers", []):
            headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
        body = b""
        if kind == "http" and self.verifier.wants_body(headers):
            try:
                buffered = await self._read_body(receive)
            except _TooLarge:
                await self._respond(send, *_too_large(self.max_body))
                return
            if buffered is None:
                return  # the client went away
            body = buffered
            receive = _replay(body, receive)
        method = scope.get("method", "GET")
        try:
            verified = await self.verifier.averify(method, _asgi_target(scope), headers, body)
        except VerificationError as exc:
            if kind == "websocket":
                await receive()  # websocket.connect
                await send({"type": "websocket.close", "code": 1008, "reason": exc.reason})
            else:
                await self._respond(send, *_refusal(exc, self.verifier))
            return
        scope = dict(scope)
        scope["securekey"] = verified
        client = scope.get("client")
        address = str(client[0]) if client else "an unknown address"
        extra = [
            (k.lower().encode(), v.encode()) for k, v in self._handshake.headers(verified, address)
        ]
        if not extra:
            await self.app(scope, receive, send)
            return

        async def send_with_handover(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                message = dict(message)
                present = {name.lower() for name, _ in message.get("headers", [])}
                added = [(k, v) for k, v in extra if k not in present]
                message["headers"] = [*message.get("headers", []), *added]
            await send(message)

        await self.app(scope, receive, send_with_handover)

    async def _read_body(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    @staticmethod
    async def _respond(
        send: Send, status: int, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        raw = [(k.lower().encode(), v.encode()) for k, v in headers]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})


def _asgi_target(scope: Scope) -> str:
    """The path and query as the client sent them."""
    raw = scope.get("raw_path")
    path = (
        raw.decode("latin-1")
        if isinstance(raw, bytes | bytearray)
        else quote(scope.get("path", "/"), safe=_TARGET_SAFE)
    )
    query = scope.get("query_string", b"")
    return f"{path}?{query.decode('latin-1')}" if query else path


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the already-read body, then defers to the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


# -- WSGI ---------------------------------------------------------------------------------

Environ = dict[str, Any]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


def _wsgi_target(environ: Environ) -> str:
    """The path and query as sent: RAW_URI/REQUEST_URI when the server keeps them."""
    for name in ("RAW_URI", "REQUEST_URI"):
        raw = environ.get(name)
        if isinstance(raw, str) and raw.startswith("/"):
            return raw
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    target = quote(path.encode("latin-1"), safe=_TARGET_SAFE) or "/"
    query = environ.get("QUERY_STRING", "")
    return f"{target}?{query}" if query else target


def _wsgi_headers(environ: Environ) -> dict[str, str]:
    headers = {
        name[5:].replace("_", "-").lower(): value
        for name, value in environ.items()
        if name.startswith("HTTP_") and isinstance(value, str)
    }
    for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(name):
            headers[name.replace("_", "-").lower()] = environ[name]
    return headers


class SecureKeyWSGIMiddleware:
    """WSGI middleware: verify every request, tell PREVIOUS users of LATEST.

    ``environ["securekey"]`` holds the ``Verified`` result. Options as ``SecureKeyMiddleware``.
    """

    def __init__(
        self,
        app: WSGIApp,
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
        self._handshake = _Handshake(self.verifier, handover, handover_window, stats)
        self.stats = self._handshake.stats

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "") in self.exempt:
            return self.app(environ, start_response)
        headers = _wsgi_headers(environ)
        body = b""
        if self.verifier.wants_body(headers):
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            if length > self.max_body:
                return self._respond(start_response, *_too_large(self.max_body))
            stream = environ["wsgi.input"]
            body = stream.read(length) if length else b""
            environ["wsgi.input"] = io.BytesIO(body)
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            verified = self.verifier.verify(method, _wsgi_target(environ), headers, body)
        except VerificationError as exc:
            return self._respond(start_response, *_refusal(exc, self.verifier))
        environ["securekey"] = verified
        address = environ.get("REMOTE_ADDR") or "an unknown address"
        extra = self._handshake.headers(verified, str(address))
        if not extra:
            return self.app(environ, start_response)

        def start_with_handover(
            status: str, response_headers: list[tuple[str, str]], *exc_info: Any
        ) -> Callable[[bytes], object]:
            present = {name.lower() for name, _ in response_headers}
            added = [(k, v) for k, v in extra if k.lower() not in present]
            return start_response(status, [*response_headers, *added], *exc_info)

        return self.app(environ, start_with_handover)

    @staticmethod
    def _respond(
        start_response: StartResponse, status: int, headers: list[tuple[str, str]], body: bytes
    ) -> list[bytes]:
        reason = {401: "Unauthorized", 413: "Content Too Large"}[status]
        start_response(f"{status} {reason}", headers)
        return [body]
