"""service-1: the seed's service that *receives* calls and checks the key they present.

A small Starlette app. ``SecureKeyMiddleware`` over a key ring on ``SECURE_KEY`` accepts LATEST
or PREVIOUS (bearer) or a signature made with either (signed); a caller that used PREVIOUS is
answered normally and told LATEST's fingerprint (or, with ``SECUREKEY_HANDOVER=key``, handed
LATEST within a window after the change, counted). A key it does not know makes the ring
refresh before the request is refused (or, if a refresh is not allowed yet, it is refused at
once with ``Securekey-Retry-After``), so a caller that heard of a rotation first still gets in.

Run it (settings in ``shared.py``)::

    SECUREKEY_URL=http://127.0.0.1:5000 SECUREKEY_TOKEN=ska_... \\
        uvicorn --factory --app-dir examples/two_services service_one:create_app --port 8001

Routes: ``POST /echo`` (protected: answers the JSON it was sent and how the caller proved
itself), ``GET /healthz`` and ``GET /stats`` (open: counters and key fingerprints, no keys).
"""

from __future__ import annotations

import hmac
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from shared import Settings, close_ring, print_exit_stats, print_started, ring_stats
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from securekey.client import HandoverStats, KeyRing, SecureKeyMiddleware, Verified

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN = ("/healthz", "/stats")


class NaiveSingleKey:
    """The baseline NOT to copy: accept only this process's own LATEST; never refresh."""

    def __init__(self, app: ASGIApp, ring: KeyRing) -> None:
        self.app, self.ring = app, ring

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN:
            await self.app(scope, receive, send)
            return
        presented = dict(scope["headers"]).get(b"authorization", b"")
        expected = f"Bearer {self.ring.latest.hex}".encode()
        if hmac.compare_digest(presented, expected):
            await self.app(scope, receive, send)
            return
        await JSONResponse({"id": "unauthorized", "message": "Unknown key."}, 401)(
            scope, receive, send
        )


class Tally:
    """Counts how each protected request ended, by status, into a shared ``Counter``."""

    def __init__(self, app: ASGIApp, counts: Counter[str]) -> None:
        self.app, self.counts = app, counts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN:
            await self.app(scope, receive, send)
            return

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.counts[f"status_{message['status']}"] += 1
            await send(message)

        await self.app(scope, receive, counting_send)


def create_app() -> Starlette:
    """The ASGI app (``uvicorn --factory service_one:create_app``)."""
    settings = Settings.from_env(app="service-1", var="SECURE_KEY")
    ring = settings.open_ring()
    counts: Counter[str] = Counter()  # one event loop: no lock needed
    handovers = HandoverStats()

    async def echo(request: Request) -> Response:
        verified: Verified | None = request.scope.get("securekey")
        if verified is not None and verified.stale:
            counts["handovers"] += 1
        body = json.loads(await request.body() or b"null")
        proof = {"mode": verified.mode, "slot": verified.slot} if verified else None
        return JSONResponse({"service": "service-1", "echo": body, "proof": proof})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def stats(request: Request) -> Response:
        return JSONResponse(
            {
                "mode": settings.mode,
                "counts": counts,
                "ring": ring_stats(ring),
                "handover": {"mode": settings.handover, **handovers.as_dict()},
            }
        )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        print_started("service-1")
        yield
        print_exit_stats("service-1", counts, ring)
        close_ring(ring)

    check = (
        Middleware(NaiveSingleKey, ring=ring)
        if settings.mode == "naive"
        else Middleware(
            SecureKeyMiddleware,
            ring=ring,
            modes=(settings.mode,),
            exempt=OPEN,
            handover=settings.handover,
            handover_window=settings.handover_window,
            stats=handovers,
            hosts=settings.hosts,
        )
    )
    return Starlette(
        routes=[
            Route("/echo", echo, methods=["POST"]),
            Route("/healthz", healthz),
            Route("/stats", stats),
        ],
        middleware=[Middleware(Tally, counts=counts), check],
        lifespan=lifespan,
    )
