"""The anchor for bench/read_path.py: the ASGI stack alone, serving fixed JSON bytes.

A plain Starlette route on the same uvicorn settings as `securekey server`: what a config
read costs with no securekey code at all. securekey's read path is reported as a ratio to it.
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BODY = os.environ.get("ANCHOR_BODY", '{"SECURE_KEY": "x"}').encode()


async def config_vars(request: Request) -> Response:
    """Return the fixed body with an ETag, like the real endpoint."""
    if not request.headers.get("authorization"):
        return Response(status_code=401)
    return Response(BODY, media_type="application/json", headers={"ETag": '"2"'})


app = Starlette(routes=[Route("/apps/{app}/config-vars", config_vars)])


async def raw(scope: dict[str, object], receive: object, send: object) -> None:
    """The same answer as a bare ASGI callable: the sanity check that Starlette is not the
    ceiling's bottleneck (the ceiling reported is the faster of the two)."""
    if scope["type"] != "http":
        return
    headers = dict(scope["headers"])  # type: ignore[call-overload]
    if b"authorization" not in headers:
        await send({"type": "http.response.start", "status": 401, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b""})  # type: ignore[operator]
        return
    await send(  # type: ignore[operator]
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"etag", b'"2"'),
                        (b"content-length", str(len(BODY)).encode())],
        }
    )  # fmt: skip
    await send({"type": "http.response.body", "body": BODY})  # type: ignore[operator]
