"""The anchor for bench/propagation.py: a naive Starlette fan-out, one queue per watcher.

``GET /apps/service-1/config-vars/stream`` sends the current pair as an SSE event and then every
new one; ``POST /rotate`` makes a new pair and puts the event into every watcher's queue;
``GET /pair`` reads the current pair (to check, after a round, what the watchers got).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

state = {"release": 2, "pair": secrets.token_hex(32).upper() + "," + secrets.token_hex(32).upper()}
queues: set[asyncio.Queue[bytes]] = set()


def _event() -> bytes:
    body = json.dumps({"SECURE_KEY": state["pair"]})
    return f"id: {state['release']}\nevent: config\ndata: {body}\n\n".encode()


async def stream(request: Request) -> Response:
    """The current pair, then each new one."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    queue.put_nowait(_event())
    queues.add(queue)

    async def events() -> AsyncIterator[bytes]:
        try:
            while True:
                yield await queue.get()
        finally:
            queues.discard(queue)

    return StreamingResponse(events(), media_type="text/event-stream")


async def rotate(request: Request) -> Response:
    """PREVIOUS := LATEST, LATEST := new; every watcher's queue gets the event."""
    latest = str(state["pair"]).split(",")[0]
    state["pair"] = secrets.token_hex(32).upper() + "," + latest
    state["release"] = int(state["release"]) + 1
    event = _event()
    for queue in queues:
        queue.put_nowait(event)
    return Response(json.dumps({"pair": state["pair"]}), media_type="application/json")


async def pair(request: Request) -> Response:
    """The current pair (read after a round, to check what the watchers got)."""
    return Response(json.dumps({"pair": state["pair"]}), media_type="application/json")


app = Starlette(
    routes=[
        Route("/apps/service-1/config-vars/stream", stream),
        Route("/rotate", rotate, methods=["POST"]),
        Route("/pair", pair),
    ]
)
