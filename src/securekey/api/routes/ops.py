"""Operations: liveness, readiness and Prometheus metrics (no authentication)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from securekey import __version__
from securekey.api.context import ctx_of, json_response

router = APIRouter()


@router.get("/healthz", tags=["operations"], responses={200: {"description": "Alive"}})
async def healthz() -> Response:
    """The process is up."""
    return json_response({"status": "ok", "version": __version__})


@router.get(
    "/readyz",
    tags=["operations"],
    responses={200: {"description": "Ready"}, 503: {"description": "Not ready"}},
)
async def readyz(request: Request) -> Response:
    """The database answers and start-up is complete."""
    ctx = ctx_of(request)
    try:
        await run_in_threadpool(ctx.service.has_due, ctx.service.clock.now())
    except Exception:
        return json_response({"status": "unavailable", "database": "unreachable"}, 503)
    if not ctx.ready:
        return json_response({"status": "starting"}, 503)
    return json_response({"status": "ok", "database": "ok"})


@router.get(
    "/metrics",
    tags=["operations"],
    responses={200: {"description": "Prometheus text format", "content": {"text/plain": {}}}},
)
async def metrics(request: Request) -> Response:
    """Prometheus metrics."""
    body = ctx_of(request).metrics.render()
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
