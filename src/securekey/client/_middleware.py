"""The seed's handshake as ASGI and WSGI middleware in front of any app.

A request carrying LATEST passes. One carrying PREVIOUS passes too, and its response gains
``Securekey-Latest-Key: <LATEST>`` so the client moves on; a signed request made with PREVIOUS
gains ``Securekey-Latest-Keyid: <fingerprint>`` instead (keys never cross the wire in that mode).
Anything else is answered 401 with a Heroku-style body ``{"id": "unauthorized", ...}``.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, MutableMapping
from typing import Any
from urllib.parse import quote

from securekey.client._errors import VerificationError
from securekey.client._ring import KeyRing
from securekey.client._signing import ReplayCache
from securekey.client._verify import DEFAULT_KEY_HEADER, Mode, Verified, Verifier

__all__ = [
    "LATEST_KEYID_HEADER",
    "LATEST_KEY_HEADER",
    "SecureKeyMiddleware",
    "SecureKeyWSGIMiddleware",
]

#: Response header handing LATEST to a client that presented PREVIOUS (bearer mode).
LATEST_KEY_HEADER = "Securekey-Latest-Key"
#: Response header naming LATEST by fingerprint to a client that signed with PREVIOUS.
LATEST_KEYID_HEADER = "Securekey-Latest-Keyid"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_TARGET_SAFE = "/:@!$&'()*+,;=-._~%"


class _TooLarge(Exception):
    """A signed request's body exceeds ``max_body``."""


def _handover(verified: Verified) -> list[tuple[str, str]]:
    """Headers to add to the response of an accepted request."""
    if not verified.stale:
        return []
    if verified.mode == "bearer":
        return [(LATEST_KEY_HEADER, verified.latest.hex), ("Cache-Control", "no-store")]
    return [(LATEST_KEYID_HEADER, verified.latest.fingerprint)]


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
    ]
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
    replay_cache: ReplayCache | None,
    clock: Callable[[], float],
) -> Verifier:
    if verifier is not None:
        return verifier
    if ring is None:
        raise TypeError("Pass a key ring (ring=...) or a verifier (verifier=...).")
    return Verifier(
        ring, header=header, modes=modes, window=window, replay_cache=replay_cache, clock=clock
    )


class SecureKeyMiddleware:
    """ASGI middleware: verify every HTTP and WebSocket request, hand LATEST to PREVIOUS users.

    ``scope["securekey"]`` tells the app how the request proved itself (a ``Verified``).
    ``exempt`` lists paths let through unchecked (health checks). Signed requests have their
    body read first (at most ``max_body`` bytes) and replayed to the app unchanged.
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
        replay_cache: ReplayCache | None = None,
        exempt: Collection[str] = (),
        max_body: int = 10 * 1024 * 1024,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.verifier = _make_verifier(ring, verifier, header, modes, window, replay_cache, clock)
        self.exempt = frozenset(exempt)
        self.max_body = max_body

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
        extra = [(k.lower().encode(), v.encode()) for k, v in _handover(verified)]
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
    """WSGI middleware: verify every request, hand LATEST to PREVIOUS users.

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
        replay_cache: ReplayCache | None = None,
        exempt: Collection[str] = (),
        max_body: int = 10 * 1024 * 1024,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.verifier = _make_verifier(ring, verifier, header, modes, window, replay_cache, clock)
        self.exempt = frozenset(exempt)
        self.max_body = max_body

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
        extra = _handover(verified)
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
