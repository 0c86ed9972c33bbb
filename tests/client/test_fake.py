"""FakeSecureKeyServer speaks the server's watch protocol, in process and over a real socket."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from securekey.client import ACCEPT, FakeSecureKeyServer, KeyPair
from securekey.client._sse import SSEEvent, SSEParser
from tests.client.conftest import Served

AUTH = {"Authorization": "Bearer test-token", "Accept": ACCEPT}
CONFIG = "/apps/service-1/config-vars"
STREAM = "/apps/service-1/config-vars/stream"


def _events(chunks: Iterator[bytes], count: int) -> list[SSEEvent]:
    """The next ``count`` events (comments such as pings are skipped)."""
    parser = SSEParser()
    events: list[SSEEvent] = []
    for chunk in chunks:
        events += [e for e in parser.feed(chunk) if e.comment is None]
        if len(events) >= count:
            break
    return events[:count]


def test_get_answers_config_vars_with_the_release_as_etag(fake: FakeSecureKeyServer) -> None:
    """GET returns the vars and ETag "<release>"; the same ETag back gives 304."""
    with httpx.Client(transport=fake.sync_transport(), base_url=fake.url) as client:
        first = client.get("/apps/service-1/config-vars", headers=AUTH)
        assert first.status_code == 200
        assert first.headers["etag"] == '"1"'
        assert first.json() == {"SECURE_KEY": fake.pair().value}
        again = client.get("/apps/service-1/config-vars", headers={**AUTH, "If-None-Match": '"1"'})
        assert again.status_code == 304
        fake.rotate()
        after = client.get("/apps/service-1/config-vars", headers={**AUTH, "If-None-Match": '"1"'})
        assert (after.status_code, after.headers["etag"]) == (200, '"2"')


@pytest.mark.parametrize(
    ("path", "token", "status", "ident"),
    [
        ("/apps/service-1/config-vars", "wrong", 401, "unauthorized"),
        ("/apps/service-2/config-vars", "test-token", 403, "forbidden"),
        ("/apps/nobody/config-vars", "test-token", 403, "forbidden"),
        ("/apps/service-1/config-vars/stream", "wrong", 401, "unauthorized"),
        ("/elsewhere", "test-token", 404, "not_found"),
    ],
)
def test_refusals_have_heroku_style_bodies(
    fake: FakeSecureKeyServer, path: str, token: str, status: int, ident: str
) -> None:
    """Unknown token 401, another or unknown app 403, each with an id and message."""
    fake.add_app("service-2", "other-token")
    with httpx.Client(transport=fake.sync_transport(), base_url=fake.url) as client:
        response = client.get(path, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == status
    assert response.json()["id"] == ident
    assert response.json()["message"]


def test_only_get_is_served(fake: FakeSecureKeyServer) -> None:
    """Other methods are 405."""
    with httpx.Client(transport=fake.sync_transport(), base_url=fake.url) as client:
        assert client.post("/apps/service-1/config-vars", headers=AUTH).status_code == 405


def test_rotation_reaches_every_app_holding_the_pair(fake: FakeSecureKeyServer) -> None:
    """rotate() changes the pair wherever it is attached, one release per app."""
    fake.add_app("service-2", "t2", {"SERVICE_ONE_SECURE_KEY": fake.pair().value, "X": "1"})
    fake.add_app("service-3", "t3", {"SECURE_KEY": KeyPair.fresh().value})
    new = fake.rotate()
    assert fake.pair() == new
    assert fake.pair("SERVICE_ONE_SECURE_KEY", "service-2") == new
    assert (fake.release(), fake.release("service-2"), fake.release("service-3")) == (2, 2, 1)


def test_set_config_sets_and_unsets_in_one_release(fake: FakeSecureKeyServer) -> None:
    """set_config with None unsets; the whole call is one release."""
    assert fake.set_config({"A": "1", "B": "2"}) == 2
    assert fake.set_config({"A": None, "B": "3"}) == 3
    assert fake.config() == {"SECURE_KEY": fake.pair().value, "B": "3"}


def test_the_fake_hides_values_in_its_repr(fake: FakeSecureKeyServer) -> None:
    """repr names apps and releases only."""
    assert fake.pair().latest.hex not in repr(fake)
    assert "service-1@v1" in repr(fake)


@pytest.mark.anyio
async def test_the_stream_sends_current_vars_then_each_release(fake: FakeSecureKeyServer) -> None:
    """In process: an event on connect (id = release), then one per new release."""
    seen: list[SSEEvent] = []
    parser = SSEParser()
    async with (
        httpx.AsyncClient(transport=fake.transport(), base_url=fake.url) as client,
        client.stream("GET", STREAM, headers=AUTH) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        async for chunk in response.aiter_bytes():
            seen += [e for e in parser.feed(chunk) if e.comment is None]
            if len(seen) == 1:
                fake.rotate()
            elif len(seen) > 1:
                break
    assert [(e.id, e.event) for e in seen] == [("1", "config"), ("2", "config")]
    assert json.loads(seen[1].data) == {"SECURE_KEY": fake.pair().value}
    assert fake.open_streams == 0


def test_the_stream_skips_the_first_event_for_a_current_last_event_id(live: Served) -> None:
    """Over uvicorn: Last-Event-ID equal to the release skips the initial event."""
    fake: FakeSecureKeyServer = live.server.config.app
    fake.set_config({"A": "1"})
    headers = {**AUTH, "Last-Event-ID": "2"}
    with (
        httpx.Client(base_url=live.url, timeout=5) as client,
        client.stream("GET", "/apps/service-1/config-vars/stream", headers=headers) as response,
    ):
        chunks = response.iter_bytes()
        fake.set_config({"A": "2"})
        (event,) = _events(chunks, 1)
    assert event.id == "3"
    assert json.loads(event.data)["A"] == "2"
    assert fake.last_event_ids == ["2"]


@pytest.mark.anyio
async def test_the_stream_pings_while_idle() -> None:
    """An idle stream sends ': ping' comments every ping_interval."""
    fake = FakeSecureKeyServer(ping_interval=0.01)
    async with httpx.AsyncClient(transport=fake.transport(), base_url=fake.url) as client:
        headers = {**AUTH, "Last-Event-ID": "1"}
        async with client.stream(
            "GET", "/apps/service-1/config-vars/stream", headers=headers
        ) as response:
            async for line in response.aiter_lines():
                assert line == ": ping"
                break


@pytest.mark.anyio
async def test_switches_make_the_stream_or_everything_fail(fake: FakeSecureKeyServer) -> None:
    """stream_enabled=False makes the stream 404; available=False makes everything 503."""
    async with httpx.AsyncClient(transport=fake.transport(), base_url=fake.url) as client:
        fake.stream_enabled = False
        assert (await client.get(STREAM, headers=AUTH)).status_code == 404
        assert (await client.get(CONFIG, headers=AUTH)).status_code == 200
        fake.available = False
        assert (await client.get(CONFIG, headers=AUTH)).status_code == 503


@pytest.mark.anyio
async def test_the_fake_answers_lifespan_events(fake: FakeSecureKeyServer) -> None:
    """As an ASGI app it completes startup and shutdown when a server asks."""
    inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    outbox: list[dict[str, str]] = []

    async def receive() -> dict[str, str]:
        return inbox.pop(0)

    async def send(message: dict[str, str]) -> None:
        outbox.append(message)

    await fake({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in outbox] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
