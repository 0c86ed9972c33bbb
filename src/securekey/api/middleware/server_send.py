"""The server's own ``send``, kept in the scope for responses that outlive their start.

Every raw ASGI middleware (ours, Starlette's error and exception handlers, FastAPI's route
wrapper) passes ``send`` on wrapped: one coroutine per layer for every message. A live stream
sends its body for hours, one event per release to thousands of watchers at once; its wrappers
only look at ``http.response.start``. So the stream sends its start through them, and its
events and last bytes straight to the server.
"""

from __future__ import annotations

from starlette.types import Scope, Send

__all__ = ["keep_server_send", "server_send"]

_KEY = "securekey.server_send"


def keep_server_send(scope: Scope, send: Send) -> None:
    """Remember ``send``, as the server gave it, in ``scope`` (the outermost layer calls this)."""
    if scope["type"] == "http":
        scope[_KEY] = send


def server_send(scope: Scope, fallback: Send) -> Send:
    """The server's ``send`` kept in ``scope``, else ``fallback`` (the wrapped one)."""
    kept = scope.get(_KEY)
    return kept if callable(kept) else fallback
