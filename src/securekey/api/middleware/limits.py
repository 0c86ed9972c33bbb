"""Request limits and latency: 413 for bodies over ``MAX_BODY``; latency by route template.

The template is FastAPI's matched route, or the one a middleware that answered the request
itself named with ``set_route_template``.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from securekey.api.metrics import Metrics, method_label

__all__ = ["MAX_BODY", "Limits", "route_template", "set_route_template"]

#: Request bodies larger than this are refused with 413.
MAX_BODY = 64 * 1024
#: The key in ``scope["state"]`` under which a middleware names the route it answered.
_TEMPLATE_KEY = "securekey.route_template"


def set_route_template(scope: Scope, template: str) -> None:
    """Name the route template of a request answered before FastAPI routed it."""
    scope.setdefault("state", {})[_TEMPLATE_KEY] = template


def route_template(scope: Scope) -> str:
    """The route template a request matched (``/apps/{app}``), or ``unmatched``."""
    named = (scope.get("state") or {}).get(_TEMPLATE_KEY)
    if isinstance(named, str):
        return named
    return str(getattr(scope.get("route"), "path", "unmatched"))


class Limits:
    """ASGI middleware: 413 for bodies over ``MAX_BODY``; request latency by route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        digits = length is not None and length.isascii() and length.isdigit()
        if length is not None and (not digits or int(length) > MAX_BODY):
            await _too_large(send)
            return
        seen = 0
        too_large = False

        async def limited_receive() -> Message:
            nonlocal seen, too_large
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > MAX_BODY:
                    too_large = True
                    raise _BodyTooLarge
            return message

        status = 500
        started = False

        async def record_send(message: Message) -> None:
            nonlocal status, started
            if too_large:
                # The app caught our exception while reading the body (FastAPI answers 400
                # "error parsing the body"): a chunked body past the limit is still a 413.
                if message["type"] == "http.response.start" and not started:
                    started = True
                    status = 413
                    await _too_large(send)
                return
            if message["type"] == "http.response.start":
                status = message["status"]
                started = True
            await send(message)

        begin = time.perf_counter()
        try:
            await self.app(scope, limited_receive, record_send)
        except _BodyTooLarge:
            if not started:
                await _too_large(send)
            status = 413
        finally:
            self.metrics.requests.labels(
                method_label(scope["method"]), route_template(scope), str(status)
            ).observe(time.perf_counter() - begin)


class _BodyTooLarge(Exception):
    pass


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _too_large(send: Send) -> None:
    body = b'{"id":"request_too_large","message":"Request bodies are limited to 64 KiB."}'
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
