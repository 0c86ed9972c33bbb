"""One watch-protocol suite, run over ``FakeSecureKeyServer`` and over the real server.

The fake claims to speak the server's config-var protocol (GET with ETag/If-None-Match, the
event stream with ``Last-Event-ID``, app-token refusals); each test here holds for both, over
a real socket on 127.0.0.1: the fake on uvicorn, the real one as ``securekey server``.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import httpx
import pytest

from securekey.client import ACCEPT, FakeSecureKeyServer, KeyPair, WatchedKeyRing, parse_pair
from securekey.client._sse import SSEEvent, SSEParser
from tests.client.conftest import serve
from tests.servers import Server, running_server


@dataclass
class Target:
    """A server speaking the watch protocol, and one app on it whose SECURE_KEY tests rotate."""

    kind: str
    url: str
    app: str
    token: str
    #: An app that exists but this token may not read.
    other_app: str
    rotate: Callable[[], KeyPair]
    set_config: Callable[[Mapping[str, str]], int]

    @property
    def auth(self) -> dict[str, str]:
        """The app token's headers."""
        return {"Authorization": f"Bearer {self.token}", "Accept": ACCEPT}

    @property
    def config_path(self) -> str:
        """The app's config-vars path."""
        return f"/apps/{self.app}/config-vars"

    def client(self) -> httpx.Client:
        """A plain client of the server (no credentials)."""
        return httpx.Client(base_url=self.url, timeout=10, trust_env=False)

    def current(self) -> tuple[int, dict[str, str]]:
        """(release, vars) as the app token reads them now."""
        with self.client() as client:
            answer = client.get(self.config_path, headers=self.auth)
        assert answer.status_code == 200, answer.text
        return int(answer.headers["etag"].strip('"')), answer.json()


@pytest.fixture(scope="module")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real ``securekey server`` (SQLite) for this module's ``real`` runs."""
    with running_server(tmp_path_factory.mktemp("protocol") / "data") as server:
        yield server


def _fake_target() -> Iterator[Target]:
    fake = FakeSecureKeyServer()
    fake.add_app("service-2", "other-token")
    served = serve(fake)
    try:
        yield Target(
            "fake",
            served.url,
            fake.app,
            fake.token,
            "service-2",
            rotate=fake.rotate,
            set_config=fake.set_config,
        )
    finally:
        fake.shutdown()
        served.stop()


def _real_target(server: Server) -> Iterator[Target]:
    with server.client() as http:
        name, other = (f"proto-{secrets.token_hex(4)}" for _ in range(2))
        for app in (name, other):
            assert http.post("/apps", json={"name": app}).status_code == 201
        addon = http.post(f"/apps/{name}/addons", json={"plan": "securekey:fortnightly"})
        assert addon.status_code == 201, addon.text
        token = http.post(f"/apps/{name}/tokens", json={})
        assert token.status_code == 201, token.text

        def rotate() -> KeyPair:
            answer = http.post(f"/addons/{addon.json()['name']}/actions/rotate", json={})
            assert answer.status_code == 200, answer.text
            return parse_pair(http.get(f"/apps/{name}/config-vars").json()["SECURE_KEY"])

        def set_config(values: Mapping[str, str]) -> int:
            answer = http.patch(f"/apps/{name}/config-vars", json=dict(values))
            assert answer.status_code == 200, answer.text
            return int(answer.headers["etag"].strip('"'))

        yield Target("real", server.url, name, token.json()["token"], other, rotate, set_config)


@pytest.fixture(params=["fake", "real"])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """The fake on uvicorn, then the real server, each with a fresh app and its app token."""
    if request.param == "fake":
        yield from _fake_target()
    else:
        yield from _real_target(request.getfixturevalue("real_server"))


def _events(chunks: Iterator[bytes], count: int) -> list[SSEEvent]:
    """The next ``count`` events of a stream (comments such as pings are skipped)."""
    parser = SSEParser()
    events: list[SSEEvent] = []
    for chunk in chunks:
        events += [e for e in parser.feed(chunk) if e.comment is None]
        if len(events) >= count:
            break
    assert len(events) >= count, "the stream ended early"
    return events[:count]


def test_get_answers_config_vars_with_the_release_as_etag(target: Target) -> None:
    """GET returns the vars and ETag "<release>"; the same ETag back is 304; a rotation is 200."""
    release, values = target.current()
    assert set(values) >= {"SECURE_KEY"}
    parse_pair(values["SECURE_KEY"])
    with target.client() as client:
        same = {**target.auth, "If-None-Match": f'"{release}"'}
        again = client.get(target.config_path, headers=same)
        assert (again.status_code, again.headers["etag"]) == (304, f'"{release}"')
        new = target.rotate()
        after = client.get(target.config_path, headers=same)
    assert (after.status_code, after.headers["etag"]) == (200, f'"{release + 1}"')
    assert parse_pair(after.json()["SECURE_KEY"]) == new


@pytest.mark.parametrize(
    ("which", "token", "status", "ident"),
    [
        ("own", "wrong", 401, "unauthorized"),
        ("other", "own", 403, "forbidden"),
        ("nobody", "own", 403, "forbidden"),
        ("own/stream", "wrong", 401, "unauthorized"),
    ],
)
def test_refusals_have_heroku_style_bodies(
    target: Target, which: str, token: str, status: int, ident: str
) -> None:
    """An unknown token is 401; another or an unknown app is 403 (an app token learns no
    names); each answer has an ``id`` and a ``message``."""
    app = {"own": target.app, "other": target.other_app, "nobody": "nobody-here"}
    name, _, stream = which.partition("/")
    path = f"/apps/{app[name]}/config-vars" + ("/stream" if stream else "")
    bearer = target.token if token == "own" else "sk_wrong_" + secrets.token_hex(8)
    with target.client() as client:
        answer = client.get(path, headers={"Authorization": f"Bearer {bearer}"})
    assert answer.status_code == status
    assert answer.json()["id"] == ident
    assert answer.json()["message"]


def test_the_stream_sends_current_vars_then_each_release(target: Target) -> None:
    """An event on connect (id = release, the vars as data), then one per new release."""
    release, values = target.current()
    with (
        target.client() as client,
        client.stream("GET", target.config_path + "/stream", headers=target.auth) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        chunks = response.iter_bytes()
        (first,) = _events(chunks, 1)
        new = target.rotate()
        (second,) = _events(chunks, 1)
    assert (first.event, first.id, json.loads(first.data)) == ("config", str(release), values)
    assert (second.event, second.id) == ("config", str(release + 1))
    assert parse_pair(json.loads(second.data)["SECURE_KEY"]) == new


def test_a_current_last_event_id_skips_the_first_event(target: Target) -> None:
    """Resuming with Last-Event-ID equal to the release sends only what comes after it."""
    release = target.set_config({"A": "1"})
    headers = {**target.auth, "Last-Event-ID": str(release)}
    with (
        target.client() as client,
        client.stream("GET", target.config_path + "/stream", headers=headers) as response,
    ):
        chunks = response.iter_bytes()
        target.set_config({"A": "2"})
        (event,) = _events(chunks, 1)
    assert event.id == str(release + 1)
    assert json.loads(event.data)["A"] == "2"


def test_a_watched_ring_follows_rotations(target: Target) -> None:
    """The SDK's WatchedKeyRing hears of a rotation through the stream and swaps at once."""
    with WatchedKeyRing.connect(target.url, target.app, target.token) as ring:
        changed = threading.Event()
        ring.on_change(lambda _: changed.set())
        new = target.rotate()
        assert changed.wait(10)
        assert ring.current == new
        assert ring.watcher.streams_opened == 1


def test_the_stream_refuses_a_request_without_credentials(target: Target) -> None:
    """No Authorization header at all is a 401 on the stream too, before anything is sent."""
    with target.client() as client:
        answer = client.get(target.config_path + "/stream", headers={"Accept": ACCEPT})
    assert answer.status_code == 401
    assert answer.json()["id"] == "unauthorized"
