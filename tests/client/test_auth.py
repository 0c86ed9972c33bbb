"""The client side of the handshake: httpx and requests auth against the real middleware."""

from __future__ import annotations

import sys
import threading
import types
from typing import Any

import httpx
import pytest

from securekey.client import (
    KeyPair,
    KeyRing,
    SecureKeyAuth,
    SecureKeyMiddleware,
    SecureKeyRequestsAuth,
    SecureKeyWSGIMiddleware,
    StaticKeyRing,
    Verifier,
)
from tests.client.apps import echo_asgi, echo_wsgi
from tests.client.conftest import Served, serve, wait_until


class Counting:
    """An ASGI wrapper counting requests that reach the middleware."""

    def __init__(self, app: Any) -> None:
        self.app, self.calls = app, 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        await self.app(scope, receive, send)


def _pairs() -> tuple[KeyPair, KeyPair, KeyPair]:
    p1 = KeyPair.fresh()
    p2 = p1.rotated()
    return p1, p2, p2.rotated()


def _async_client(
    server: StaticKeyRing, auth: SecureKeyAuth, **options: Any
) -> tuple[httpx.AsyncClient, Counting]:
    app = Counting(SecureKeyMiddleware(echo_asgi, server, **options))
    transport = httpx.ASGITransport(app)
    return httpx.AsyncClient(transport=transport, base_url="http://s", auth=auth), app


@pytest.mark.anyio
async def test_httpx_presents_latest_as_a_bearer_key() -> None:
    """SecureKeyAuth sends Authorization: Bearer <LATEST> and the server accepts it."""
    ring = StaticKeyRing()
    client, _ = _async_client(ring, SecureKeyAuth(ring))
    async with client:
        response = await client.get("/")
    assert response.json()["slot"] == "latest"
    assert response.request.headers["authorization"] == f"Bearer {ring.present()}"


@pytest.mark.anyio
async def test_httpx_adopts_latest_handed_over_for_previous() -> None:
    """With handover="key", a client one rotation behind is handed LATEST and uses it next."""
    p1, p2, p3 = _pairs()
    client_ring, server_ring = StaticKeyRing(p1), StaticKeyRing(p2)
    auth = SecureKeyAuth(client_ring)
    client, _ = _async_client(server_ring, auth, handover="key")
    async with client:
        first = await client.get("/")
        assert first.json()["slot"] == "previous"
        assert auth.key == p2.latest
        second = await client.get("/")
        assert second.json()["slot"] == "latest"
        assert "securekey-latest-key" not in second.headers
    assert client_ring.current == p1  # adoption is the auth's, the shared ring is untouched
    client_ring.swap(p3)
    assert auth.key == p3.latest  # the ring moved on: the adoption no longer applies


@pytest.mark.anyio
async def test_httpx_refreshes_its_own_ring_on_a_hint_and_is_never_handed_a_key() -> None:
    """By default a caller one rotation behind gets a fingerprint; its own ring fetches LATEST."""
    p1, p2, _ = _pairs()
    client_ring, server_ring = StaticKeyRing(p1), StaticKeyRing(p2)
    client_ring.stage(p2)  # what this caller's own refresh (its own token) will find
    auth = SecureKeyAuth(client_ring)
    client, _ = _async_client(server_ring, auth)
    async with client:
        first = await client.get("/")
        assert first.json()["slot"] == "previous"
        assert first.headers["securekey-latest-fingerprint"] == p2.latest.fingerprint
        assert "securekey-latest-key" not in first.headers
        client_ring.refresh()  # joins the one the hint started; returns once it is done
        second = await client.get("/")
        assert second.json()["slot"] == "latest"
    assert client_ring.current == p2
    assert client_ring.refreshes <= 2


@pytest.mark.anyio
async def test_httpx_waits_as_told_when_the_server_cannot_refresh_yet() -> None:
    """A 401 with Securekey-Retry-After is resent after that wait, once the server caught up."""
    p1, p2, _ = _pairs()
    client_ring = StaticKeyRing(p2)  # the caller heard of the rotation first
    server_ring = KeyRing(p1, fetcher=_Later(p2), min_refresh_interval=0.3)
    server_ring.refresh()  # the server just refreshed: the next one may start in 0.3 s only
    client, app = _async_client(server_ring, SecureKeyAuth(client_ring))
    async with client:
        response = await client.get("/")
    assert response.status_code == 200
    assert [r.status_code for r in response.history][:1] == [401]
    assert "securekey-retry-after" in response.history[0].headers
    assert app.calls == 1 + len(response.history)


class _Later:
    """A fetcher that finds nothing the first time and ``pair`` after that."""

    def __init__(self, pair: KeyPair) -> None:
        self.pair, self.calls = pair, 0

    def fetch(self) -> KeyPair | None:
        self.calls += 1
        return self.pair if self.calls > 1 else None

    async def afetch(self) -> KeyPair | None:
        return self.fetch()


@pytest.mark.anyio
async def test_httpx_refreshes_and_retries_once_after_a_401() -> None:
    """A client two rotations behind refreshes its ring on 401 and the resent request passes."""
    p1, _, p3 = _pairs()
    client_ring, server_ring = StaticKeyRing(p1), StaticKeyRing(p3)
    client_ring.stage(p3)
    client, app = _async_client(server_ring, SecureKeyAuth(client_ring))
    async with client:
        response = await client.get("/")
    assert response.status_code == 200
    assert len(response.history) == 1
    assert response.history[0].status_code == 401
    assert app.calls == 2


@pytest.mark.anyio
async def test_httpx_does_not_retry_when_the_refresh_finds_nothing() -> None:
    """With no newer key to be had, the 401 comes back after a single request."""
    p1, _, p3 = _pairs()
    client, app = _async_client(StaticKeyRing(p3), SecureKeyAuth(StaticKeyRing(p1)))
    async with client:
        response = await client.get("/")
    assert response.status_code == 401
    assert app.calls == 1


@pytest.mark.anyio
async def test_httpx_signed_mode_signs_and_sends_no_key() -> None:
    """signed=True sends only a Securekey-Signature (host signed), which the middleware accepts."""
    ring = StaticKeyRing()
    client, _ = _async_client(ring, SecureKeyAuth(ring, signed=True), hosts=["S:80"])
    async with client:
        response = await client.post("/pay?id=3", json={"amount": 5})
        assert response.json()["mode"] == "signed"
        assert response.json()["body"] == '{"amount":5}'
        sent = response.request.headers
        assert "authorization" not in sent
        assert ring.present() not in str(sent)


@pytest.mark.anyio
async def test_httpx_signed_mode_refreshes_when_told_of_a_newer_key() -> None:
    """A signer using PREVIOUS gets the LATEST fingerprint (both names) and refreshes."""
    p1, p2, _ = _pairs()
    client_ring, server_ring = StaticKeyRing(p1), StaticKeyRing(p2)
    client_ring.stage(p2)
    changed = threading.Event()
    client_ring.on_change(lambda _: changed.set())
    client, _ = _async_client(server_ring, SecureKeyAuth(client_ring, signed=True))
    async with client:
        response = await client.get("/")
    assert response.json()["slot"] == "previous"
    assert response.headers["securekey-latest-keyid"] == p2.latest.fingerprint
    assert response.headers["securekey-latest-fingerprint"] == p2.latest.fingerprint
    assert changed.wait(5)
    assert client_ring.current == p2


@pytest.mark.anyio
async def test_httpx_signed_mode_retries_after_the_race() -> None:
    """A signer two rotations behind is refused, refreshes, re-signs and passes."""
    p1, _, p3 = _pairs()
    client_ring = StaticKeyRing(p1)
    client_ring.stage(p3)
    client, _ = _async_client(StaticKeyRing(p3), SecureKeyAuth(client_ring, signed=True))
    async with client:
        response = await client.put("/x", content=b"data")
    assert response.status_code == 200
    assert response.json()["body"] == "data"


@pytest.mark.anyio
async def test_httpx_custom_header_carries_the_bare_key() -> None:
    """header='X-Securekey-Key' sends the bare key where a matching server looks for it."""
    ring = StaticKeyRing()
    app = SecureKeyMiddleware(echo_asgi, ring, header="X-Securekey-Key")
    auth = SecureKeyAuth(ring, header="X-Securekey-Key")
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://s", auth=auth) as c:
        response = await c.get("/")
    assert response.request.headers["x-securekey-key"] == ring.present()
    assert response.json()["slot"] == "latest"


def test_httpx_sync_client_adopts_and_retries_through_wsgi() -> None:
    """The same handshake (key handover) works with a plain httpx.Client in front of WSGI."""
    p1, p2, p3 = _pairs()
    server_ring = StaticKeyRing(p2)
    client_ring = StaticKeyRing(p1)
    auth = SecureKeyAuth(client_ring)
    wsgi = SecureKeyWSGIMiddleware(echo_wsgi, server_ring, handover="key")
    transport = httpx.WSGITransport(wsgi)
    with httpx.Client(transport=transport, base_url="http://s", auth=auth) as client:
        assert client.get("/").json()["slot"] == "previous"
        assert client.get("/").json()["slot"] == "latest"
        p4 = p3.rotated()
        server_ring.swap(p4)  # now two rotations ahead of what the client adopted
        client_ring.stage(p4)
        response = client.post("/", content=b"again")
        assert response.status_code == 200
        assert response.json()["body"] == "again"


def test_an_ill_formed_handover_is_ignored() -> None:
    """A Securekey-Latest-Key that is not a key changes nothing."""
    ring = StaticKeyRing()
    auth = SecureKeyAuth(ring)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Securekey-Latest-Key": "not-a-key"})

    with httpx.Client(transport=httpx.MockTransport(handler), auth=auth) as client:
        client.get("http://s/")
    assert auth.key == ring.latest


def test_an_adopted_key_that_is_refused_is_dropped() -> None:
    """If the key a server handed over is later refused, the client goes back to its ring."""
    ring = StaticKeyRing()
    bogus = KeyPair.fresh().latest
    auth = SecureKeyAuth(ring)
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        if len(seen) == 1:
            return httpx.Response(200, headers={"Securekey-Latest-Key": bogus.hex})
        return httpx.Response(401)

    with httpx.Client(transport=httpx.MockTransport(handler), auth=auth) as client:
        client.get("http://s/")
        assert auth.key == bogus
        client.get("http://s/")
    assert auth.key == ring.latest
    assert seen[1] == f"Bearer {bogus.hex}"


# -- requests -------------------------------------------------------------------------------


def test_requests_auth_says_clearly_that_requests_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without the requests package, using SecureKeyRequestsAuth is a clear ImportError."""
    monkeypatch.setitem(sys.modules, "requests", None)
    with pytest.raises(ImportError, match="pip install requests"):
        SecureKeyRequestsAuth(StaticKeyRing())


class _Prepared:
    """The parts of requests.PreparedRequest the auth uses."""

    def __init__(self, method: str, path_url: str, body: bytes | str | None) -> None:
        self.method, self.path_url, self.body = method, path_url, body
        self.url = "http://s" + path_url
        self.headers: dict[str, str] = {}
        self.hooks: dict[str, list[Any]] = {"response": []}

    def register_hook(self, event: str, hook: Any) -> None:
        self.hooks[event].append(hook)

    def copy(self) -> _Prepared:
        other = _Prepared(self.method, self.path_url, self.body)
        other.headers = dict(self.headers)
        other.hooks = {k: list(v) for k, v in self.hooks.items()}
        return other


class _Response:
    """The parts of requests.Response the auth uses."""

    def __init__(self, status: int, headers: dict[str, str], request: _Prepared, conn: Any) -> None:
        self.status_code, self.headers, self.request, self.connection = (
            status,
            headers,
            request,
            conn,
        )
        self.history: list[_Response] = []
        self.content = b""
        self.closed = False

    def close(self) -> None:
        self.closed = True


class _Adapter:
    """A transport adapter that answers with a Verifier, as the WSGI middleware would."""

    def __init__(self, verifier: Verifier) -> None:
        self.verifier, self.sent = verifier, 0

    def send(self, request: _Prepared, **kwargs: Any) -> _Response:
        self.sent += 1
        body = request.body.encode() if isinstance(request.body, str) else request.body or b""
        try:
            headers = {**request.headers, "Host": "s"}  # what requests sends for http://s
            verified = self.verifier.verify(request.method, request.path_url, headers, body)
        except Exception:
            return _Response(401, {}, request, self)
        headers = {"Securekey-Latest-Key": verified.latest.hex} if verified.stale else {}
        return _Response(200, headers, request, self)


def _session_send(auth: SecureKeyRequestsAuth, adapter: _Adapter, request: _Prepared) -> Any:
    """What requests.Session.send does with auth and response hooks."""
    prepared = auth(request)
    response = adapter.send(prepared, timeout=5)
    for hook in prepared.hooks["response"]:
        response = hook(response, timeout=5) or response
    return response


@pytest.fixture
def stub_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend requests is installed (its objects are stubbed per test)."""
    monkeypatch.setitem(sys.modules, "requests", types.ModuleType("requests"))


@pytest.mark.usefixtures("stub_requests")
def test_requests_auth_adopts_and_retries() -> None:
    """SecureKeyRequestsAuth presents LATEST, adopts a handover, and retries once after 401."""
    p1, p2, p3 = _pairs()
    server_ring, client_ring = StaticKeyRing(p2), StaticKeyRing(p1)
    adapter = _Adapter(Verifier(server_ring))
    auth = SecureKeyRequestsAuth(client_ring)
    first = _session_send(auth, adapter, _Prepared("GET", "/a", None))
    assert first.status_code == 200
    assert auth.key == p2.latest
    p4 = p3.rotated()
    server_ring.swap(p4)
    client_ring.stage(p4)
    retried = _session_send(auth, adapter, _Prepared("POST", "/b?x=1", "body"))
    assert retried.status_code == 200
    assert [r.status_code for r in retried.history] == [401]
    assert retried.history[0].closed
    assert adapter.sent == 3


@pytest.mark.usefixtures("stub_requests")
def test_requests_auth_signs_bodies_and_refuses_streams() -> None:
    """Signed mode signs str and bytes bodies and refuses a body it cannot read in memory."""
    ring = StaticKeyRing()
    adapter = _Adapter(Verifier(ring))
    auth = SecureKeyRequestsAuth(ring, signed=True)
    ok = _session_send(auth, adapter, _Prepared("POST", "/p?q=1", '{"a": "é"}'))
    assert ok.status_code == 200
    with pytest.raises(ValueError, match="in memory"):
        auth(_Prepared("POST", "/p", iter([b"chunk"])))  # type: ignore[arg-type]


def test_requests_against_a_real_server() -> None:
    """With requests installed, the handshake (hint, then refresh) works over a real socket."""
    requests = pytest.importorskip("requests")
    p1, p2, p3 = _pairs()
    server_ring, client_ring = StaticKeyRing(p2), StaticKeyRing(p1)
    client_ring.stage(p2)  # what this service's own refresh from the server will find
    served: Served = serve(SecureKeyMiddleware(echo_asgi, server_ring))
    try:
        auth = SecureKeyRequestsAuth(client_ring)
        first = requests.get(served.url + "/", auth=auth, timeout=5)
        assert first.json()["slot"] == "previous"
        assert "securekey-latest-key" not in first.headers
        wait_until(lambda: client_ring.current == p2, 5, "the hinted refresh")
        second = requests.get(served.url + "/", auth=auth, timeout=5)
        assert second.json()["slot"] == "latest"
        p4 = p3.rotated()
        server_ring.swap(p4)
        client_ring.stage(p4)
        third = requests.post(served.url + "/x?y=1", data=b"body", auth=auth, timeout=5)
        assert third.json() == {"body": "body", "slot": "latest", "mode": "bearer"}
        assert [r.status_code for r in third.history] == [401]
        signed = SecureKeyRequestsAuth(client_ring, signed=True)
        fourth = requests.put(served.url + "/s?q=%20", json={"a": 1}, auth=signed, timeout=5)
        assert fourth.json()["mode"] == "signed"
    finally:
        served.stop()
