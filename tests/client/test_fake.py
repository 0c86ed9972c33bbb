"""FakeSecureKeyServer's own controls: rotations, config changes, switches, pings, lifespan.

The protocol it shares with the real server is tested over both in test_protocol.py.
"""

from __future__ import annotations

import httpx
import pytest

from securekey.client import ACCEPT, FakeSecureKeyServer, KeyPair

AUTH = {"Authorization": "Bearer test-token", "Accept": ACCEPT}
CONFIG = "/apps/service-1/config-vars"
STREAM = "/apps/service-1/config-vars/stream"


def test_unknown_paths_are_404_with_a_heroku_style_body(fake: FakeSecureKeyServer) -> None:
    """A path outside the config-var endpoints is 404 with an id and a message.

    (Refusals of tokens and apps are in the shared protocol suite, test_protocol.py.)
    """
    with httpx.Client(transport=fake.sync_transport(), base_url=fake.url) as client:
        response = client.get("/elsewhere", headers=AUTH)
    assert response.status_code == 404
    assert response.json()["id"] == "not_found"
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
