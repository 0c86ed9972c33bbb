"""service-2: the seed's service that *calls* service-1 with its attached key.

A small Starlette app. It holds the add-on's pair as ``SERVICE_ONE_SECURE_KEY`` (the
attachment ``--as SERVICE_ONE_SECURE``) in a key ring and calls service-1 through httpx with
``SecureKeyAuth``: it presents LATEST (bearer) or signs with it (signed); told by service-1
that a newer LATEST exists, it refreshes its ring from the securekey server with its own app
token; after a 401 it refreshes and resends (or resends after the wait service-1 names).

Run it (settings in ``shared.py``, plus ``SERVICE_ONE_URL``)::

    SECUREKEY_URL=http://127.0.0.1:5000 SECUREKEY_TOKEN=ska_... \\
    SERVICE_ONE_URL=http://127.0.0.1:8001 SECUREKEY_MODE=signed \\
        uvicorn --factory --app-dir examples/two_services service_two:create_app --port 8002

Routes: ``POST /load?n=100&concurrency=4`` calls service-1 ``n`` times (at most 10,000, with
at most 32 at once) and answers the counts; ``GET /stats`` the counts so far and the key
fingerprints; ``GET /healthz``.

``SERVICE_ONE_RETRY_SECONDS`` (default 10): a call that fails *before* service-1 answered
(connection refused or dropped, e.g. while service-1 restarts under ``securekey run``) is
sent again for up to this long. ``POST /echo`` is idempotent, so that is safe; an answer,
whatever its status, is never retried here (the SDK itself resends once after a 401 when a
refresh finds a newer key).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from shared import Settings, SettingsError, close_ring, print_exit_stats, print_started, ring_stats
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from securekey.client import LATEST_FINGERPRINT_HEADER, LATEST_KEY_HEADER, SecureKeyAuth

MAX_CALLS = 10_000
MAX_CONCURRENCY = 32


def _bounded(request: Request, name: str, default: int, top: int) -> int:
    raw = request.query_params.get(name, str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= top:
        raise ValueError(f"{name} must be a whole number from 1 to {top}")
    return int(raw)


def create_app() -> Starlette:
    """The ASGI app (``uvicorn --factory service_two:create_app``)."""
    settings = Settings.from_env(app="service-2", var="SERVICE_ONE_SECURE_KEY")
    target = os.environ.get("SERVICE_ONE_URL", "").strip()
    if not target:
        raise SettingsError("SERVICE_ONE_URL is not set (where service-1 listens).")
    retry_for = float(os.environ.get("SERVICE_ONE_RETRY_SECONDS", "10"))
    ring = settings.open_ring()
    auth = (
        None if settings.mode == "naive" else SecureKeyAuth(ring, signed=settings.mode == "signed")
    )
    client = httpx.AsyncClient(base_url=target, auth=auth, timeout=10.0)
    totals: Counter[str] = Counter()

    def naive_headers() -> dict[str, str]:
        # The baseline NOT to copy: present LATEST as this process knows it, nothing else.
        return {"Authorization": f"Bearer {ring.present()}"} if settings.mode == "naive" else {}

    async def call(n: int, counts: Counter[str]) -> None:
        """One call to service-1, counted; retried only while service-1 has not answered."""
        deadline = time.monotonic() + retry_for
        started = time.perf_counter()
        counts["requests"] += 1
        while True:
            try:
                response = await client.post("/echo", json={"n": n}, headers=naive_headers())
                break
            except httpx.TransportError as exc:
                if time.monotonic() >= deadline:
                    counts["failed"] += 1
                    counts[f"error_{type(exc).__name__}"] += 1
                    return
                counts["transport_retries"] += 1
                await asyncio.sleep(0.05)
        elapsed_ms = (time.perf_counter() - started) * 1000
        counts["max_ms"] = max(counts["max_ms"], round(elapsed_ms))
        counts["auth_retries"] += len(response.history)  # each one answered 401
        if LATEST_KEY_HEADER in response.headers or LATEST_FINGERPRINT_HEADER in response.headers:
            counts["handovers"] += 1
        if response.status_code == 200 and response.json().get("echo") == {"n": n}:
            counts["ok"] += 1
        else:
            counts["failed"] += 1
            counts[f"status_{response.status_code}"] += 1

    async def load(request: Request) -> Response:
        try:
            n = _bounded(request, "n", 100, MAX_CALLS)
            concurrency = _bounded(request, "concurrency", 4, MAX_CONCURRENCY)
        except ValueError as exc:
            return JSONResponse({"id": "invalid_params", "message": str(exc)}, 422)
        counts: Counter[str] = Counter()
        numbers = iter(range(n))

        async def worker() -> None:
            for i in numbers:  # the workers share one iterator: n calls in all
                await call(i, counts)

        await asyncio.gather(*(worker() for _ in range(min(n, concurrency))))
        for name, value in counts.items():
            totals[name] = max(totals[name], value) if name == "max_ms" else totals[name] + value
        return JSONResponse(dict(counts))

    async def stats(request: Request) -> Response:
        return JSONResponse({"mode": settings.mode, "counts": totals, "ring": ring_stats(ring)})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        print_started("service-2")
        yield
        print_exit_stats("service-2", totals, ring)
        await client.aclose()
        close_ring(ring)

    return Starlette(
        routes=[
            Route("/load", load, methods=["POST"]),
            Route("/stats", stats),
            Route("/healthz", healthz),
        ],
        lifespan=lifespan,
    )
