"""The server side of the handshake: ASGI and WSGI middleware in front of an echo app."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from securekey.client import (
    HandoverStats,
    Key,
    KeyPair,
    KeyRing,
    SecureKeyMiddleware,
    SecureKeyWSGIMiddleware,
    StaticKeyRing,
    Verifier,
    sign_request,
)
from tests.client.apps import echo_asgi, echo_wsgi

#: Where the test clients send their requests (their Host header).
HOST = "service-1"


def _asgi(ring: KeyRing, **kwargs: Any) -> httpx.AsyncClient:
    app = SecureKeyMiddleware(echo_asgi, ring, **kwargs)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://service-1")


def _wsgi(ring: KeyRing, **kwargs: Any) -> httpx.Client:
    app = SecureKeyWSGIMiddleware(echo_wsgi, ring, **kwargs)
    return httpx.Client(transport=httpx.WSGITransport(app), base_url="http://service-1")


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.anyio
async def test_asgi_refuses_a_request_without_credentials() -> None:
    """No key: 401 with a Heroku-style JSON body and a Bearer challenge."""
    async with _asgi(StaticKeyRing()) as client:
        response = await client.get("/orders")
    assert response.status_code == 401
    assert response.json()["id"] == "unauthorized"
    assert response.json()["reason"] == "missing"
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.anyio
async def test_asgi_passes_latest_without_a_handover() -> None:
    """LATEST reaches the app, which sees the result in scope['securekey']."""
    ring = StaticKeyRing()
    async with _asgi(ring) as client:
        response = await client.get("/orders", headers=_bearer(ring.present()))
    assert response.status_code == 200
    assert response.json() == {"body": "", "slot": "latest", "mode": "bearer"}
    assert "securekey-latest-key" not in response.headers


@pytest.mark.anyio
async def test_asgi_hints_latest_to_a_client_presenting_previous() -> None:
    """PREVIOUS is answered normally plus LATEST's fingerprint (a hint), never the key."""
    ring = StaticKeyRing()
    stats = HandoverStats()
    async with _asgi(ring, stats=stats) as client:
        response = await client.get("/orders", headers=_bearer(ring.current.previous.hex))
    assert response.status_code == 200
    assert response.json()["slot"] == "previous"
    assert response.headers["securekey-latest-fingerprint"] == ring.latest.fingerprint
    assert "securekey-latest-key" not in response.headers
    assert ring.latest.hex not in str(response.headers)
    assert stats.as_dict() == {"hints": 1, "keys": 0, "keys_declined": 0}


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _attack(ring: KeyRing, mode: str, **options: Any) -> list[tuple[int, bool]]:
    """A thief holds LATEST, then 5 rotations; each time it calls, adopting any handed key.

    Returns (status, whether a key was handed over) per rotation.
    """
    held = ring.latest
    seen: list[tuple[int, bool]] = []
    async with _asgi(ring, **options) as client:
        for _ in range(5):
            ring.swap(ring.current.rotated())
            if mode == "signed":
                headers = {"Securekey-Signature": sign_request(held, "GET", "/", b"", host=HOST)}
            else:
                headers = _bearer(held.hex)
            response = await client.get("/", headers=headers)
            handed = response.headers.get("securekey-latest-key")
            if handed:
                held = Key(handed)
            seen.append((response.status_code, handed is not None))
    return seen


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["bearer", "signed"])
async def test_leaked_key_is_not_renewed_by_handshake(mode: str) -> None:
    """A leaked LATEST passes once as PREVIOUS, earns no key, and is refused from then on.

    The seed's handshake handed LATEST to anyone presenting PREVIOUS, so a thief who took a key
    once stayed current through every rotation. By default only the fingerprint is handed.
    """
    seen = await _attack(KeyRing(KeyPair.fresh()), mode)
    assert seen == [(200, False), (401, False), (401, False), (401, False), (401, False)]


@pytest.mark.anyio
async def test_key_handover_after_its_window_does_not_renew_a_leaked_key() -> None:
    """With handover="key", a key two rotations old is refused once the window has passed."""
    clock = Clock()
    ring = KeyRing(KeyPair.fresh(), monotonic=clock)
    leaked = ring.latest
    stats = HandoverStats()
    async with _asgi(ring, handover="key", handover_window=60, stats=stats) as client:
        ring.swap(ring.current.rotated())
        clock.now += 61  # the window after the change has passed
        late = await client.get("/", headers=_bearer(leaked.hex))
        assert late.status_code == 200
        assert "securekey-latest-key" not in late.headers
        assert late.headers["securekey-latest-fingerprint"] == ring.latest.fingerprint
        ring.swap(ring.current.rotated())
        clock.now += 61
        refused = await client.get("/", headers=_bearer(leaked.hex))
        assert refused.status_code == 401
    assert stats.as_dict() == {"hints": 1, "keys": 0, "keys_declined": 1}


def test_key_handover_within_its_window_is_counted_and_logged_without_the_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """handover="key" hands LATEST over within the window; each one is counted and logged."""
    clock = Clock()
    ring = KeyRing(KeyPair.fresh(), monotonic=clock)
    stats = HandoverStats()
    ring.swap(ring.current.rotated())
    clock.now += 30
    with (
        caplog.at_level(logging.WARNING, logger="securekey.client"),
        _wsgi(ring, handover="key", handover_window=60, stats=stats) as client,
    ):
        response = client.get("/", headers=_bearer(ring.current.previous.hex))
    assert response.headers["securekey-latest-key"] == ring.latest.hex
    assert response.headers["cache-control"] == "no-store"
    assert stats.as_dict() == {"hints": 0, "keys": 1, "keys_declined": 0}
    [record] = [r for r in caplog.records if "Handed LATEST" in r.getMessage()]
    message = record.getMessage()
    assert "127.0.0.1" in message
    assert ring.latest.fingerprint in message
    assert ring.latest.hex not in message
    assert ring.current.previous.hex not in message


@pytest.mark.anyio
async def test_signed_requests_never_get_a_key_even_in_key_mode() -> None:
    """Keys never travel in signed mode: handover="key" still answers a signer with a hint."""
    seen = await _attack(KeyRing(KeyPair.fresh()), "signed", handover="key")
    assert seen == [(200, False), (401, False), (401, False), (401, False), (401, False)]


def test_handover_options_are_checked() -> None:
    """An unknown handover mode or a negative window is refused when the middleware is built."""
    with pytest.raises(ValueError, match="handover"):
        SecureKeyMiddleware(echo_asgi, StaticKeyRing(), handover="both")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="window"):
        SecureKeyWSGIMiddleware(echo_wsgi, StaticKeyRing(), handover_window=-1)


@pytest.mark.anyio
async def test_asgi_checks_signed_requests_and_replays_the_body() -> None:
    """A signed POST passes and the app still receives the full body the middleware read."""
    ring = StaticKeyRing()
    body = b'{"amount": 12}'
    async with _asgi(ring) as client:
        header = sign_request(ring.latest, "POST", "/pay?x=1", body, host=HOST)
        response = await client.post(
            "/pay?x=1", content=body, headers={"Securekey-Signature": header}
        )
        assert response.json() == {"body": body.decode(), "slot": "latest", "mode": "signed"}
        again = await client.post("/pay?x=1", content=body, headers={"Securekey-Signature": header})
        assert again.status_code == 401
        assert again.json()["reason"] == "replayed"


@pytest.mark.anyio
async def test_asgi_names_latest_by_fingerprint_to_a_previous_signer() -> None:
    """A request signed with PREVIOUS gets LATEST's fingerprint, never the key itself."""
    ring = StaticKeyRing()
    async with _asgi(ring) as client:
        header = sign_request(ring.current.previous, "GET", "/", b"", host=HOST)
        response = await client.get("/", headers={"Securekey-Signature": header})
    assert response.status_code == 200
    assert response.headers["securekey-latest-keyid"] == ring.current.latest.fingerprint
    assert response.headers["securekey-latest-fingerprint"] == ring.latest.fingerprint
    assert "securekey-latest-key" not in response.headers


@pytest.mark.anyio
async def test_asgi_refuses_oversized_signed_bodies() -> None:
    """A signed body over max_body is answered 413 before any verification."""
    ring = StaticKeyRing()
    async with _asgi(ring, max_body=8) as client:
        body = b"x" * 9
        header = sign_request(ring.latest, "POST", "/", body, host=HOST)
        response = await client.post("/", content=body, headers={"Securekey-Signature": header})
    assert response.status_code == 413


@pytest.mark.anyio
async def test_asgi_lets_exempt_paths_through() -> None:
    """Paths listed in exempt reach the app with no credentials and no result."""
    async with _asgi(StaticKeyRing(), exempt=["/health"]) as client:
        response = await client.get("/health")
    assert response.json()["slot"] is None


@pytest.mark.anyio
async def test_asgi_closes_an_unauthenticated_websocket() -> None:
    """A WebSocket without credentials is closed with 1008 before the app sees it."""
    reached: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["type"])

    middleware = SecureKeyMiddleware(app, StaticKeyRing())
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/ws", "headers": [], "query_string": b""}
    await middleware(scope, receive, send)
    assert reached == []
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": "missing"}]


@pytest.mark.anyio
async def test_asgi_passes_lifespan_events_through() -> None:
    """Non-HTTP scopes such as lifespan go straight to the app."""
    reached: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["type"])

    middleware = SecureKeyMiddleware(app, StaticKeyRing())
    await middleware({"type": "lifespan"}, receive=None, send=None)  # type: ignore[arg-type]
    assert reached == ["lifespan"]


def test_middleware_needs_a_ring_or_a_verifier() -> None:
    """Building middleware with neither a ring nor a verifier is a TypeError."""
    with pytest.raises(TypeError, match="ring"):
        SecureKeyMiddleware(echo_asgi)
    verifier = Verifier(StaticKeyRing())
    assert SecureKeyWSGIMiddleware(echo_wsgi, verifier=verifier).verifier is verifier


def test_wsgi_refuses_and_passes_like_asgi() -> None:
    """WSGI: no key is 401; LATEST passes; PREVIOUS passes with the hint header."""
    ring = StaticKeyRing()
    with _wsgi(ring) as client:
        refused = client.get("/")
        assert refused.status_code == 401
        assert refused.json()["reason"] == "missing"
        ok = client.get("/", headers=_bearer(ring.present()))
        assert ok.json()["slot"] == "latest"
        assert "securekey-latest-key" not in ok.headers
        old = client.get("/", headers=_bearer(ring.current.previous.hex))
        assert old.json()["slot"] == "previous"
        assert old.headers["securekey-latest-fingerprint"] == ring.latest.fingerprint
        assert "securekey-latest-key" not in old.headers


def test_wsgi_checks_signed_requests_and_keeps_the_body() -> None:
    """WSGI: a signed POST with a query passes and the app reads the body unchanged."""
    ring = StaticKeyRing()
    body = b"payload"
    with _wsgi(ring) as client:
        header = sign_request(ring.latest, "POST", "/a/b?q=1&r=two", body, host=HOST)
        response = client.post(
            "/a/b?q=1&r=two", content=body, headers={"Securekey-Signature": header}
        )
        assert response.json() == {"body": "payload", "slot": "latest", "mode": "signed"}
        tampered = sign_request(ring.latest, "POST", "/a/b?q=2&r=two", body, host=HOST)
        refused = client.post(
            "/a/b?q=1&r=two", content=body, headers={"Securekey-Signature": tampered}
        )
        assert refused.json()["reason"] == "bad_signature"


def test_wsgi_uses_a_custom_header_and_exempt_paths() -> None:
    """WSGI honours header='X-Securekey-Key', exempt paths and the 413 limit."""
    ring = StaticKeyRing()
    with _wsgi(ring, header="X-Securekey-Key", exempt=["/health"], max_body=4) as client:
        assert client.get("/health").json()["slot"] is None
        assert client.get("/", headers={"X-Securekey-Key": ring.present()}).status_code == 200
        body = b"too long"
        header = sign_request(ring.latest, "POST", "/", body, host=HOST)
        response = client.post("/", content=body, headers={"Securekey-Signature": header})
        assert response.status_code == 413


@pytest.mark.anyio
async def test_the_middleware_plugs_into_starlette() -> None:
    """Starlette's add_middleware builds it from keyword arguments, as users will."""
    starlette = pytest.importorskip("starlette.applications")
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.scope["securekey"].slot)

    from starlette.routing import Route

    app = starlette.Starlette(routes=[Route("/", hello)])
    ring = StaticKeyRing()
    app.add_middleware(SecureKeyMiddleware, ring=ring)
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://s") as client:
        assert (await client.get("/", headers=_bearer(ring.present()))).text == "latest"
        assert (await client.get("/")).status_code == 401
