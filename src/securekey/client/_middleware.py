"""The seed's handshake as ASGI middleware in front of any app (WSGI: ``_wsgi``).

A request carrying LATEST passes. One carrying PREVIOUS passes too, and its response gains a
hint, ``Securekey-Latest-Fingerprint: <LATEST's fingerprint>``: the client refreshes its own
ring from the securekey server with its own token, so holding an old key earns nothing. The
seed's ``Securekey-Latest-Key: <LATEST>`` is an opt-in (``handover="key"``), given only within
``handover_window`` seconds after the pair changed, and each one is counted and logged.
Anything else is answered 401 with a Heroku-style body ``{"id": "unauthorized", ...}``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import quote

from securekey.client._errors import VerificationError
from securekey.client._handshake import Guard, refusal, too_large

__all__ = ["TARGET_SAFE", "ASGIApp", "Message", "Receive", "Scope", "SecureKeyMiddleware", "Send"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Characters left as they are when a path is quoted back into a request target.
TARGET_SAFE = "/:@!$&'()*+,;=-._~%"


class _TooLarge(Exception):
    """A signed request's body exceeds ``max_body``."""


class SecureKeyMiddleware(Guard[ASGIApp]):
    """ASGI middleware: verify every HTTP and WebSocket request, tell PREVIOUS users of LATEST.

    ``scope["securekey"]`` tells the app how the request proved itself (a ``Verified``).
    ``exempt`` lists paths let through unchecked (health checks). Signed requests have their
    body read first (at most ``max_body`` bytes) and replayed to the app unchanged.
    ``handover`` is ``"hint"`` (default: the fingerprint only) or ``"key"`` (the seed's: LATEST
    itself to a bearer client, within ``handover_window`` seconds of the pair's change, counted
    in ``stats`` and logged with the caller's address). ``hosts`` and ``replay_cache``: see
    ``Verifier``.
    """

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
                await self._respond(send, *too_large(self.max_body))
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
                await self._respond(send, *refusal(exc, self.verifier))
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
        else quote(scope.get("path", "/"), safe=TARGET_SAFE)
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
