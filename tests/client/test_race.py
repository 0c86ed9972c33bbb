"""The race in miniature: two services learn of each rotation at random, independent moments.

service-2 calls service-1 continuously while the shared pair rotates every 50 ms; each side's
ring applies every pushed change after its own random delay (up to 40 ms). With the handshake
(bearer) or signatures, no request may fail; a naive single-key check must fail, which proves
the set-up really produces the race.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import httpx
import pytest

from securekey.client import (
    AsyncWatchedKeyRing,
    FakeSecureKeyServer,
    KeyRing,
    SecureKeyAuth,
    SecureKeyMiddleware,
)
from tests.client.apps import echo_asgi

ROTATE_EVERY = 0.05
ROTATIONS = 15
MAX_DELAY = 0.04


def _naive_service(ring: KeyRing) -> Any:
    """A service that accepts only its own LATEST, and never refreshes."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = dict(scope["headers"])
        ok = headers.get(b"authorization", b"").decode() == f"Bearer {ring.present()}"
        status = 200 if ok else 401
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


async def _scenario(mode: str, seed: int) -> Counter[str]:
    fake = FakeSecureKeyServer(app="service-1", token="t1")
    fake.add_app("service-2", "t2", {"SERVICE_ONE_SECURE_KEY": fake.pair().value})
    rng1, rng2 = random.Random(seed), random.Random(seed + 1)
    options: dict[str, Any] = {"transport": fake.transport(), "min_refresh_interval": 0.01}
    ring1 = await AsyncWatchedKeyRing.connect(
        fake.url, "service-1", "t1", apply_delay=lambda: rng1.uniform(0, MAX_DELAY), **options
    )
    ring2 = await AsyncWatchedKeyRing.connect(
        fake.url,
        "service-2",
        "t2",
        var="SERVICE_ONE_SECURE_KEY",
        apply_delay=lambda: rng2.uniform(0, MAX_DELAY),
        **options,
    )
    if mode == "naive":
        service1 = _naive_service(ring1)
        auth: httpx.Auth | None = None
        headers = lambda: {"Authorization": f"Bearer {ring2.present()}"}  # noqa: E731
    else:
        service1 = SecureKeyMiddleware(echo_asgi, ring1)
        auth = SecureKeyAuth(ring2, signed=mode == "signed")
        headers = dict
    counts: Counter[str] = Counter()
    done = asyncio.Event()

    async def rotate() -> None:
        for _ in range(ROTATIONS):
            await asyncio.sleep(ROTATE_EVERY)
            fake.rotate()
            counts["rotations"] += 1
        await asyncio.sleep(2 * MAX_DELAY)  # let the last one settle under load
        done.set()

    async def load(client: httpx.AsyncClient) -> None:
        while not done.is_set():
            response = await client.post("/call", content=b"ping", headers=headers())
            counts["requests"] += 1
            counts["failures"] += response.status_code != 200
            counts["retried"] += bool(response.history)
            counts["handovers"] += any(h.startswith("securekey-latest") for h in response.headers)
            await asyncio.sleep(0)  # in-process calls never block: let the other tasks run

    transport = httpx.ASGITransport(service1)
    async with httpx.AsyncClient(transport=transport, base_url="http://service-1", auth=auth) as c:
        await asyncio.gather(rotate(), load(c), load(c), load(c))
    counts["server_refreshes"] = ring1.refreshes
    await ring1.aclose()
    await ring2.aclose()
    return counts


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["bearer", "signed"])
async def test_no_request_fails_while_keys_rotate(mode: str) -> None:
    """Bearer with handover, or signatures: zero failures across many racing rotations."""
    counts = await _scenario(mode, seed=5)
    print(f"\n{mode}: {dict(counts)}")
    assert counts["rotations"] == ROTATIONS
    assert counts["requests"] >= 3 * ROTATIONS
    assert counts["failures"] == 0
    assert counts["handovers"] + counts["server_refreshes"] > 0  # the race really happened


@pytest.mark.anyio
async def test_a_naive_single_key_check_does_fail() -> None:
    """The same race with one key and no handshake loses requests: the test can fail."""
    counts = await _scenario("naive", seed=5)
    print(f"\nnaive: {dict(counts)}")
    assert counts["failures"] > 0
