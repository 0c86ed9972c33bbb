"""The broadcast push path on a real server: one release, the same event to every watcher of the
app, revoked tokens' streams ended by notice, closed streams' slots back at once, slow readers."""

from __future__ import annotations

import re
import secrets
import selectors
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.servers import Server, running_server

#: Generous: the machine running the suite is shared; how fast is bench/'s job.
DEADLINE = 30.0
_ID = re.compile(rb"^id: (\d+)\n", re.M)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real server whose caps let one token hold a few hundred streams."""
    data = tmp_path_factory.mktemp("broadcast") / "data"
    with running_server(data, args=("--max-streams-per-token", "400")) as server:
        yield server


class Watcher:
    """One raw SSE connection (no HTTP client library): what it received, as bytes."""

    def __init__(self, server: Server, app: str, token: str, rcvbuf: int | None = None) -> None:
        url = urlsplit(server.url)
        self.sock = socket.socket()
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect((url.hostname or "127.0.0.1", url.port or 80))
        self.sock.sendall(
            f"GET /apps/{app}/config-vars/stream HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {token}\r\n\r\n".encode()
        )
        self.sock.setblocking(False)
        self.received = b""
        self.closed = False

    def ids(self) -> list[int]:
        """The ids of the config events received so far, in order."""
        return [int(m) for m in _ID.findall(self.received)]

    def read(self) -> None:
        """Take what has arrived, without waiting."""
        while not self.closed:
            try:
                chunk = self.sock.recv(65536)
            except BlockingIOError:
                return
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.closed = True
            self.received += chunk

    def close(self) -> None:
        self.sock.close()


def pump(watchers: list[Watcher], done: object, what: str) -> None:
    """Read every watcher until ``done(watcher)`` holds for all, or fail after the deadline."""
    deadline = time.monotonic() + DEADLINE
    with selectors.DefaultSelector() as sel:
        for w in watchers:
            sel.register(w.sock, selectors.EVENT_READ, w)
        while not all(done(w) for w in watchers):  # type: ignore[operator]
            assert time.monotonic() < deadline, f"not every watcher {what}"
            for key, _ in sel.select(0.2):
                key.data.read()


def new_app(http: httpx.Client) -> tuple[str, str]:
    """A fresh app with an add-on; (its name, the add-on's name)."""
    name = f"bc-{secrets.token_hex(4)}"
    assert http.post("/apps", json={"name": name}).status_code == 201
    addon = http.post(f"/apps/{name}/addons", json={"plan": "securekey:fortnightly"})
    assert addon.status_code == 201, addon.text
    return name, addon.json()["name"]


def app_token(http: httpx.Client, app: str) -> tuple[str, str]:
    """A new app token: (its id, its value)."""
    created = http.post(f"/apps/{app}/tokens", json={}).json()
    return created["id"], created["token"]


def rotate(http: httpx.Client, addon: str) -> None:
    answer = http.post(f"/addons/{addon}/actions/rotate", json={"emergency": False})
    assert answer.status_code == 200, answer.text


def test_every_watcher_gets_each_release_once_in_order_and_revocation_ends_only_its_streams(
    server: Server,
) -> None:
    """120 raw watchers on two tokens all receive the same events, ids rising, none twice; the
    watchers of another app receive none of them; deleting one token ends its 60 streams while
    the other token's streams go on to receive the next release."""
    with server.client() as http:
        app, addon = new_app(http)
        other, _ = new_app(http)
        (first_id, first), (_, second) = app_token(http, app), app_token(http, app)
        _, stranger = app_token(http, other)
        mine = [Watcher(server, app, first) for _ in range(60)]
        theirs = [Watcher(server, app, second) for _ in range(60)]
        bystanders = [Watcher(server, other, stranger) for _ in range(5)]
        everyone = mine + theirs + bystanders
        try:
            pump(everyone, lambda w: len(w.ids()) == 1, "got its first event")
            start = mine[0].ids()[0]
            for _ in range(3):
                rotate(http, addon)
            pump(mine + theirs, lambda w: w.ids()[-1] == start + 3, "got the third release")
            for w in mine + theirs:
                ids = w.ids()
                assert ids == sorted(set(ids)), ids
                assert ids[0] == start, ids
                payload = w.received.rsplit(b"id: ", 1)[1]
                assert payload == mine[0].received.rsplit(b"id: ", 1)[1]
            for w in bystanders:
                w.read()
                assert len(w.ids()) == 1
                assert not w.closed
            assert http.delete(f"/apps/{app}/tokens/{first_id}").status_code == 200
            pump(mine, lambda w: w.closed, "of the revoked token was closed")
            rotate(http, addon)
            pump(theirs, lambda w: w.ids()[-1] == start + 4, "kept receiving")
            assert all(w.ids()[-1] == start + 3 for w in mine)
            assert not any(w.closed for w in theirs + bystanders)
        finally:
            for w in everyone:
                w.close()


def test_a_closed_stream_gives_its_slot_back_without_waiting_for_a_ping(tmp_path: Path) -> None:
    """With two streams per token, closing one lets a third open within seconds, long before
    the 15 s heartbeat would have noticed the dead connection."""
    with (
        running_server(tmp_path / "data", args=("--max-streams-per-token", "2")) as server,
        server.client() as http,
    ):
        app, _ = new_app(http)
        _, token = app_token(http, app)
        watchers = [Watcher(server, app, token) for _ in range(2)]
        pump(watchers, lambda w: len(w.ids()) == 1, "opened")
        refused = Watcher(server, app, token)
        pump([refused], lambda w: b"\r\n\r\n" in w.received, "answered")
        assert refused.received.startswith(b"HTTP/1.1 429"), refused.received[:100]
        refused.close()
        watchers[0].close()
        deadline = time.monotonic() + 10
        while True:
            again = Watcher(server, app, token)
            pump([again], lambda w: b"\r\n\r\n" in w.received, "answered")
            if again.received.startswith(b"HTTP/1.1 200"):
                break
            again.close()
            assert time.monotonic() < deadline, "the closed stream's slot never came back"
            time.sleep(0.2)
        again.close()
        watchers[1].close()


def test_a_reader_that_stops_reading_holds_back_nobody_and_never_goes_back(
    server: Server,
) -> None:
    """One watcher with a tiny receive buffer that stops reading does not delay the others
    through 15 releases of ~60 KB each; when it reads again its ids only ever rise and it ends
    on the newest release (older ones it had no time for are skipped, never sent late)."""
    with server.client() as http:
        app, _ = new_app(http)
        _, token = app_token(http, app)
        stalled = Watcher(server, app, token, rcvbuf=4096)
        reader = Watcher(server, app, token)
        try:
            pump([stalled, reader], lambda w: len(w.ids()) == 1, "got its first event")
            start = reader.ids()[0]
            for step in range(15):
                big = {f"BIG_{i}": secrets.token_hex(7_500) for i in range(4)}  # 60 KB an event
                answer = http.patch(f"/apps/{app}/config-vars", json={**big, "N": str(step)})
                assert answer.status_code == 200, answer.text
                pump([reader], lambda w, n=step: w.ids()[-1] == start + n + 1, "kept up")
            pump([stalled], lambda w: w.ids()[-1] == start + 15, "caught up at last")
            ids = stalled.ids()
            assert ids == sorted(set(ids)), ids
            assert reader.ids() == list(range(start, start + 16))
        finally:
            stalled.close()
            reader.close()
