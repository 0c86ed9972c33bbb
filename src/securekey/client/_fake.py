"""``FakeSecureKeyServer``: the two config-var watch endpoints, in process, for tests.

It speaks the server's protocol (``GET /apps/{app}/config-vars`` with ETag/If-None-Match,
and the ``/stream`` event stream with ``Last-Event-ID`` and pings) as an ASGI app — run it on
any ASGI server — and as an ``httpx.MockTransport`` for tests without sockets. Tests change
it with ``set_config`` and ``rotate``; every open stream hears of it at once.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

import httpx

from securekey.client._fake_stream import Subscription, SubscriptionStream, serve_stream
from securekey.client._middleware import Receive, Scope, Send
from securekey.domain.keys import KeyPair, parse_pair
from securekey.exceptions import NotFoundError

__all__ = ["FakeSecureKeyServer"]

_ROUTE = re.compile(r"/apps/([^/]+)/config-vars(/stream)?/?")


@dataclass
class _App:
    name: str
    token: str
    vars: dict[str, str]
    release: int = 1


@dataclass
class _Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""


def _error(status: int, ident: str, message: str) -> _Reply:
    body = json.dumps({"id": ident, "message": message}).encode()
    return _Reply(status, [("Content-Type", "application/json")], body)


@dataclass(frozen=True)
class _StreamRequest:
    app: str
    last_event_id: str | None


class FakeSecureKeyServer:
    """An in-process stand-in for the securekey server's config-var endpoints.

    It starts with one app (``app``, readable with ``token``) whose ``var`` holds a fresh key
    pair at release 1. Tokens are app tokens: 401 for an unknown one, 403 for another app's
    or an unknown one (as the real server). ``stream_enabled = False`` makes the stream
    answer 404 (clients must fall back to polling); ``available = False`` makes everything
    answer 503.
    """

    #: The base URL to use with ``transport()`` (any URL works; this one reads well).
    url = "http://securekey.test"

    def __init__(
        self,
        app: str = "service-1",
        token: str = "test-token",  # noqa: S107 - a fake's well-known test token
        *,
        var: str = "SECURE_KEY",
        config: Mapping[str, str] | None = None,
        ping_interval: float = 15.0,
    ) -> None:
        self._lock = threading.Lock()
        self._apps: dict[str, _App] = {}
        self._tokens: dict[str, str] = {}
        self._subs: set[Subscription] = set()
        self._closing = False
        self.app, self.token, self.var = app, token, var
        self.ping_interval = ping_interval
        self.stream_enabled = True
        self.available = True
        #: Counts: "get", "not_modified", "stream", "events", "refused", "unavailable".
        self.counts: Counter[str] = Counter()
        #: The ``Last-Event-ID`` of every stream request, in order (None when absent).
        self.last_event_ids: list[str | None] = []
        self.add_app(app, token, config if config is not None else {var: KeyPair.fresh().value})

    # -- the state tests drive ------------------------------------------------------------

    def add_app(self, name: str, token: str, config: Mapping[str, str] | None = None) -> None:
        """Another app, readable with ``token``, at release 1."""
        with self._lock:
            self._apps[name] = _App(name, token, dict(config or {}))
            self._tokens[token] = name

    def config(self, app: str | None = None) -> dict[str, str]:
        """The app's config vars now."""
        with self._lock:
            return dict(self._get(app).vars)

    def release(self, app: str | None = None) -> int:
        """The app's current release number."""
        with self._lock:
            return self._get(app).release

    def pair(self, var: str | None = None, app: str | None = None) -> KeyPair:
        """The key pair in ``var`` (default: the first app's var)."""
        return parse_pair(self.config(app)[var or self.var])

    def set_config(self, values: Mapping[str, str | None], app: str | None = None) -> int:
        """Set (or, with None, unset) config vars in one new release; returns its number."""
        with self._lock:
            target = self._get(app)
            for name, value in values.items():
                if value is None:
                    target.vars.pop(name, None)
                else:
                    target.vars[name] = value
            target.release += 1
            release = target.release
        self._wake(target.name)
        return release

    def rotate(self, var: str | None = None, app: str | None = None) -> KeyPair:
        """Rotate the pair in ``var``, in every app holding that same pair (as attachments do).

        Each app changed gets one new release; returns the new pair.
        """
        with self._lock:
            old = self._get(app).vars[var or self.var]
            new = parse_pair(old).rotated()
            changed = []
            for each in self._apps.values():
                names = [n for n, v in each.vars.items() if v == old]
                for name in names:
                    each.vars[name] = new.value
                if names:
                    each.release += 1
                    changed.append(each.name)
        for name in changed:
            self._wake(name)
        return new

    def shutdown(self) -> None:
        """End every open stream and answer 503 from now on (lets an ASGI server stop)."""
        with self._lock:
            self._closing = True
            self.available = False
            subs = list(self._subs)
        for sub in subs:
            sub.close()

    def end_streams(self, *, retry: float | None = None) -> None:
        """End every open stream now, as a server restart would; new ones are accepted.

        With ``retry`` (seconds) each stream ends gracefully, as a stopping server's does:
        ``retry: <ms>`` and ``event: shutdown`` first.
        """
        with self._lock:
            subs = list(self._subs)
        farewell = None
        if retry is not None:
            farewell = (
                f"retry: {round(retry * 1000)}\nevent: shutdown\n"
                'data: {"reason": "the server is stopping; reconnect"}\n\n'
            ).encode()
        for sub in subs:
            sub.farewell = farewell
            sub.close()

    @property
    def open_streams(self) -> int:
        """How many streams are open now."""
        with self._lock:
            return len(self._subs)

    # -- internals ------------------------------------------------------------------------

    def _get(self, app: str | None) -> _App:
        name = app or self.app
        if name not in self._apps:
            raise NotFoundError("app", name)
        return self._apps[name]

    def _state(self, app: str) -> tuple[int, dict[str, str]] | None:
        with self._lock:
            if self._closing or app not in self._apps:
                return None
            found = self._apps[app]
            return found.release, dict(found.vars)

    def _count(self, what: str) -> None:
        with self._lock:
            self.counts[what] += 1

    def _wake(self, app: str) -> None:
        with self._lock:
            subs = [s for s in self._subs if s.app == app]
        for sub in subs:
            sub.wake()

    def _subscribe(self, request: _StreamRequest) -> Subscription:
        last = request.last_event_id
        sent = int(last) if last and last.isdigit() else None
        sub = Subscription(
            request.app,
            sent,
            asyncio.get_running_loop(),
            state=self._state,
            count=self._count,
            ping_interval=self.ping_interval,
            ended=self._unsubscribe,
        )
        with self._lock:
            self.counts["stream"] += 1
            self.last_event_ids.append(last)
            self._subs.add(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        sub.closed = True
        with self._lock:
            self._subs.discard(sub)

    def _handle(
        self, method: str, path: str, headers: Mapping[str, str]
    ) -> _Reply | _StreamRequest:
        """Answer one request: a reply, or an accepted request to open the stream."""
        if not self.available:
            self._count("unavailable")
            return _error(503, "unavailable", "The fake securekey server is unavailable.")
        match = _ROUTE.fullmatch(path)
        if match is None:
            return _error(404, "not_found", "Not found.")
        if method != "GET":
            return _error(405, "method_not_allowed", "Only GET is served here.")
        scheme, _, token = headers.get("authorization", "").partition(" ")
        with self._lock:
            owner = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
            found = self._apps.get(unquote(match[1]))
            if owner is None:
                self.counts["refused"] += 1
                return _error(401, "unauthorized", "Invalid credentials provided.")
            if found is None or owner != found.name:
                # As the real server: an app token learns nothing about other apps' names.
                self.counts["refused"] += 1
                return _error(403, "forbidden", "This token may not read that app.")
            release, values = found.release, dict(found.vars)
        if match[2]:
            if not self.stream_enabled:
                return _error(404, "not_found", "Not found.")
            return _StreamRequest(found.name, headers.get("last-event-id"))
        etag = f'"{release}"'
        if headers.get("if-none-match", "").strip() == etag:
            self._count("not_modified")
            return _Reply(304, [("ETag", etag)])
        self._count("get")
        body = json.dumps(values).encode()
        return _Reply(200, [("Content-Type", "application/json"), ("ETag", etag)], body)

    # -- fronts ---------------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        """An httpx transport for ``AsyncClient`` (and the watched key rings) serving this fake."""

        async def handler(request: httpx.Request) -> httpx.Response:
            headers = {k.lower(): v for k, v in request.headers.items()}
            result = self._handle(request.method, request.url.path, headers)
            if isinstance(result, _Reply):
                return httpx.Response(result.status, headers=result.headers, content=result.body)
            return httpx.Response(
                200,
                headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
                stream=SubscriptionStream(self._subscribe(result)),
            )

        return httpx.MockTransport(handler)

    def sync_transport(self) -> httpx.MockTransport:
        """An httpx transport for a plain ``Client`` (``KeyRing.from_server``); GET only."""

        def handler(request: httpx.Request) -> httpx.Response:
            headers = {k.lower(): v for k, v in request.headers.items()}
            result = self._handle(request.method, request.url.path, headers)
            if isinstance(result, _StreamRequest):
                message = "The sync transport cannot stream; use transport()."
                return httpx.Response(501, json={"id": "not_implemented", "message": message})
            return httpx.Response(result.status, headers=result.headers, content=result.body)

        return httpx.MockTransport(handler)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI app."""
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
        result = self._handle(scope["method"], scope["path"], headers)
        if isinstance(result, _Reply):
            raw = [(k.lower().encode(), v.encode()) for k, v in result.headers]
            await send({"type": "http.response.start", "status": result.status, "headers": raw})
            await send({"type": "http.response.body", "body": result.body})
            return
        await serve_stream(self._subscribe(result), receive, send)

    def __repr__(self) -> str:
        with self._lock:
            apps = ", ".join(f"{a.name}@v{a.release}" for a in self._apps.values())
        return f"FakeSecureKeyServer({apps})"
