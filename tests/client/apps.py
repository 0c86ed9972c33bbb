"""Tiny echo apps (ASGI and WSGI) that report what the middleware told them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from securekey.client import Verified
from securekey.client._middleware import Receive, Scope, Send


def _describe(verified: Verified | None, body: bytes) -> bytes:
    return json.dumps(
        {
            "body": body.decode(),
            "slot": verified.slot if verified else None,
            "mode": verified.mode if verified else None,
        }
    ).encode()


async def echo_asgi(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer 200 with the body received and the verification result."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": _describe(scope.get("securekey"), body)})


def echo_wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Answer 200 with the body received and the verification result."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    start_response("200 OK", [("Content-Type", "application/json")])
    return [_describe(environ.get("securekey"), body)]
