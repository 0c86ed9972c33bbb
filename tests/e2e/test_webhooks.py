"""App webhooks against a real server: Heroku-shaped, signed, retried, listed, and stoppable.

A tiny HTTP receiver on 127.0.0.1 answers each path from a script of status codes and records
every request; the server runs with ``SECUREKEY_WEBHOOK_BACKOFF`` shortened so retries come soon.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import select
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import support
from tests.e2e.conftest import WEBHOOK_BACKOFF
from tests.pg import free_port
from tests.servers import Server, running_server
from tests.support import app_with_addon, wait_until


@dataclass(frozen=True)
class Received:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Records POSTs; each path answers from its script of codes, then 200."""

    url: str
    scripts: dict[str, list[int]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def on(self, path: str) -> list[Received]:
        with self.changed:
            return [r for r in self.received if r.path == path]

    def wait_for(self, path: str, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until ``path`` has received ``count`` requests (bounded by ``timeout``)."""
        with self.changed:
            done = self.changed.wait_for(lambda: len(self._on(path)) >= count, timeout)
            assert done, f"{path} got {len(self._on(path))} of {count} deliveries"
            return self._on(path)

    def _on(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    """The receiver, serving in a thread on 127.0.0.1."""
    state = Receiver("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with state.changed:
                script = state.scripts.get(self.path, [])
                code = script.pop(0) if script else 200
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()
            with state.changed:
                state.received.append(
                    Received(self.path, dict(self.headers.items()), body, time.monotonic())
                )
                state.changed.notify_all()

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep test output quiet

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def server(shared_server: Server) -> Server:
    """The shared real server, started with a short webhook backoff."""
    return shared_server


@pytest.fixture(scope="module")
def http(server: Server) -> Iterator[httpx.Client]:
    """An operator client."""
    with server.client() as client:
        yield client


def new_app(http: httpx.Client) -> tuple[str, str]:
    """A fresh app with an add-on: (app, add-on)."""
    return app_with_addon(http, "hook")


def subscribe(http: httpx.Client, app: str, url: str, secret: str) -> dict[str, Any]:
    """A webhook on ``app``'s releases."""
    made = http.post(
        f"/apps/{app}/webhooks",
        json={"url": url, "include": ["api:release"], "level": "notify", "secret": secret},
    )
    assert made.status_code == 201, made.text
    hook: dict[str, Any] = made.json()
    return hook


def rotate(http: httpx.Client, app: str, addon: str) -> int:
    """Rotate; the app's new release."""
    answer = support.rotate(http, addon)
    (release,) = [r["version"] for r in answer["releases"] if r["app"]["name"] == app]
    return int(release)


def deliveries(http: httpx.Client, app: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = http.get(f"/apps/{app}/webhook-deliveries").json()
    return found


def signature(secret: str, body: bytes) -> str:
    """Heroku's scheme, computed here independently of the server's code."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def test_a_rotation_delivers_a_signed_heroku_release_event(
    http: httpx.Client, receiver: Receiver
) -> None:
    """The POST is Heroku's release event, signed with HMAC-SHA256 of the raw body."""
    app, addon = new_app(http)
    secret = secrets.token_hex(16)
    hook = subscribe(http, app, f"{receiver.url}/signed", secret)
    assert secret not in json.dumps(hook)
    release = rotate(http, app, addon)
    (got,) = receiver.wait_for("/signed", 1)
    assert got.headers["Content-Type"] == "application/json"
    assert hmac.compare_digest(
        got.headers["Heroku-Webhook-Hmac-SHA256"], signature(secret, got.body)
    )
    assert got.headers["Heroku-Webhook-Hmac-SHA256"] != signature("wrong", got.body)
    event = got.json()
    assert event["resource"] == "release"
    assert event["action"] == "create"
    assert event["version"] == "application/vnd.heroku+json; version=3"
    assert event["data"]["version"] == release
    assert event["data"]["app"]["name"] == app
    assert event["data"]["current"] is True
    meta = event["webhook_metadata"]
    assert meta["webhook"]["id"] == hook["id"]
    assert meta["event"] == {"id": event["id"], "include": "api:release"}
    listed = wait_until(
        lambda: [d for d in deliveries(http, app) if d["status"] == "succeeded"], 10, "success"
    )
    assert [d["id"] for d in listed] == [meta["delivery"]["id"]]
    assert listed[0]["num_attempts"] == 1
    assert listed[0]["last_attempt"]["code"] == 200


def test_a_failed_delivery_is_retried_and_then_succeeds(
    http: httpx.Client, receiver: Receiver
) -> None:
    """A 500 then a 200: two attempts of one delivery, listed as succeeded after 2 attempts."""
    app, addon = new_app(http)
    receiver.scripts["/flaky"] = [500]
    secret = secrets.token_hex(16)
    subscribe(http, app, f"{receiver.url}/flaky", secret)
    release = rotate(http, app, addon)
    first, second = receiver.wait_for("/flaky", 2)
    assert second.at - first.at >= WEBHOOK_BACKOFF, "the retry came before its backoff"
    assert first.json()["data"]["version"] == second.json()["data"]["version"] == release
    one, two = first.json()["webhook_metadata"], second.json()["webhook_metadata"]
    assert one["delivery"] == two["delivery"]
    assert one["attempt"] != two["attempt"]
    for got in (first, second):
        assert got.headers["Heroku-Webhook-Hmac-SHA256"] == signature(secret, got.body)
    (done,) = wait_until(
        lambda: [d for d in deliveries(http, app) if d["status"] == "succeeded"], 10, "success"
    )
    assert done["num_attempts"] == 2
    assert done["next_attempt_at"] is None
    assert done["last_attempt"]["code"] == 200
    assert done["id"] == one["delivery"]["id"]


def test_an_unreachable_receiver_leaves_the_delivery_retrying(http: httpx.Client) -> None:
    """Nobody listening: the delivery is `retrying`, with a next attempt scheduled."""
    app, addon = new_app(http)
    subscribe(http, app, f"http://127.0.0.1:{free_port()}/down", "s3cret")
    rotate(http, app, addon)
    (pending,) = wait_until(
        lambda: [d for d in deliveries(http, app) if d["status"] == "retrying"], 10, "a retry"
    )
    assert pending["num_attempts"] >= 1
    assert pending["next_attempt_at"] is not None
    assert pending["last_attempt"]["code"] is None
    assert pending["last_attempt"]["error_class"]
    single = http.get(f"/apps/{app}/webhook-deliveries/{pending['id']}")
    assert single.status_code == 200
    assert single.json()["next_attempt_at"] is not None


def test_deleting_a_webhook_stops_its_deliveries(http: httpx.Client, receiver: Receiver) -> None:
    """Once deleted, a failing webhook is not retried and gets no new events."""
    app, addon = new_app(http)
    receiver.scripts["/gone"] = [500] * 100
    doomed = subscribe(http, app, f"{receiver.url}/gone", "s3cret")
    rotate(http, app, addon)
    receiver.wait_for("/gone", 2)  # failed once, retried once: it is being retried
    assert http.delete(f"/apps/{app}/webhooks/{doomed['id']}").status_code == 200
    assert deliveries(http, app) == []
    assert http.get(f"/apps/{app}/webhooks/{doomed['id']}").status_code == 404
    # Nothing of it is left to send; a later webhook gets its deliveries while the deleted one,
    # retried every few tenths of a second before, gets nothing more (beyond one attempt that
    # may have been in flight when it was deleted).
    seen = len(receiver.on("/gone"))
    subscribe(http, app, f"{receiver.url}/after", "s3cret")
    for n in range(1, 4):
        rotate(http, app, addon)
        receiver.wait_for("/after", n)
    assert len(receiver.on("/gone")) <= seen + 1
    settled = wait_until(
        lambda: (found := deliveries(http, app)) and all(d["status"] == "succeeded" for d in found),
        10,
        "the later webhook's deliveries to settle",
    )
    assert settled


def test_webhook_payloads_never_carry_key_material(
    server: Server, http: httpx.Client, receiver: Receiver
) -> None:
    """No body sent, nor the deliveries list, contains any key the app ever held."""
    app, addon = new_app(http)
    subscribe(http, app, f"{receiver.url}/scan", "s3cret")
    keys: set[str] = set()
    for n in range(1, 4):
        keys.update(http.get(f"/apps/{app}/config-vars").json()["SECURE_KEY"].split(","))
        rotate(http, app, addon)
        receiver.wait_for("/scan", n)
    http.post(f"/addons/{addon}/actions/rotate", json={"emergency": True})
    receiver.wait_for("/scan", 4)
    keys.update(http.get(f"/apps/{app}/config-vars").json()["SECURE_KEY"].split(","))
    assert len(keys) == 6
    texts = [r.body.decode() for r in receiver.on("/scan")]
    texts.append(http.get(f"/apps/{app}/webhook-deliveries").text)
    texts.append(http.get(f"/apps/{app}/webhooks").text)
    for text in texts:
        for key in keys:
            assert key.upper() not in text.upper()


def test_a_custom_authorization_header_is_sent_with_each_delivery(
    http: httpx.Client, receiver: Receiver
) -> None:
    """Heroku's `authorization` field reaches the receiver as its Authorization header."""
    app, addon = new_app(http)
    made = http.post(
        f"/apps/{app}/webhooks",
        json={
            "url": f"{receiver.url}/authorized",
            "include": ["api:release"],
            "authorization": "Bearer receiver-secret-123",
        },
    )
    assert made.status_code == 201, made.text
    assert "receiver-secret-123" not in made.text
    rotate(http, app, addon)
    (got,) = receiver.wait_for("/authorized", 1)
    assert got.headers["Authorization"] == "Bearer receiver-secret-123"
    bad = http.post(
        f"/apps/{app}/webhooks",
        json={"url": receiver.url, "include": ["api:release"], "authorization": "a\r\nb"},
    )
    assert bad.status_code == 422
    assert "authorization" in bad.json()["message"]


class SlowReceiver:
    """A receiver on 127.0.0.1 that reads a request, then trickles its answer forever.

    It sends one byte every ``every`` seconds, so no single read ever times out; it records
    when each connection opened and when the sender gave up on it.
    """

    def __init__(self, every: float) -> None:
        self.every = every
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.opened: list[float] = []
        self.closed: list[float] = []
        #: Seconds each finished connection stayed open, in the order they ended.
        self.durations: list[float] = []
        self.most_open = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    @property
    def open_now(self) -> int:
        with self.lock:
            return len(self.opened) - len(self.closed)

    def _accept(self) -> None:
        self.listener.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self.lock:
                self.opened.append(time.monotonic())
                self.most_open = max(self.most_open, len(self.opened) - len(self.closed))
            thread = threading.Thread(target=self._trickle, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _trickle(self, conn: socket.socket) -> None:
        began = time.monotonic()
        answer = iter(b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100_000)
        with conn:
            conn.settimeout(5)
            try:
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    request += chunk
                while not self.stop.is_set():
                    ready, _, _ = select.select([conn], [], [], self.every)
                    if ready and not conn.recv(65536):
                        return  # the sender hung up
                    conn.sendall(bytes([next(answer)]))
            except OSError:
                return
            finally:
                with self.lock:
                    self.closed.append(time.monotonic())
                    self.durations.append(self.closed[-1] - began)

    def close(self) -> None:
        self.stop.set()
        self.listener.close()
        for thread in self.threads:
            thread.join(5)


def test_issue8_point6_a_slow_receiver_does_not_hold_up_other_deliveries(
    tmp_path: Path, receiver: Receiver
) -> None:
    """Three receivers trickling bytes hold three senders, not all: a fast receiver's
    delivery arrives while they are stuck, and each slow attempt ends at the total deadline."""
    deadline = 6.0
    slow = SlowReceiver(every=0.5)
    env = {
        "SECUREKEY_ALLOW_PRIVATE_WEBHOOKS": "1",
        "SECUREKEY_WEBHOOK_TIMEOUT": str(deadline),
        "SECUREKEY_WEBHOOK_BACKOFF": "600",
    }
    try:
        with running_server(tmp_path / "data", extra_env=env) as server, server.client() as http:
            slow_apps = [new_app(http) for _ in range(3)]
            fast_app, _ = new_app(http)
            for app, _ in slow_apps:
                subscribe(http, app, f"{slow.url}/slow", "s3cret")
            subscribe(http, fast_app, f"{receiver.url}/fast-{fast_app}", "s3cret")
            for app, addon in slow_apps:
                rotate(http, app, addon)
            rotate(http, *slow_apps[0])  # a second event for one slow receiver: it waits its turn
            wait_until(lambda: slow.open_now == 3, 10, "three slow receivers connected")
            released = time.monotonic()
            assert http.patch(f"/apps/{fast_app}/config-vars", json={"GO": "1"}).is_success
            (got,) = receiver.wait_for(f"/fast-{fast_app}", 1, timeout=deadline)
            latency = got.at - released
            print(f"fast delivery {latency:.2f} s after its release, 3 slow receivers stuck")
            assert slow.open_now >= 3, "the fast delivery only came once the slow ones ended"
            assert got.at < min(slow.opened) + deadline

            # Each slow attempt ends at the deadline in total, though no read ever waited long.
            wait_until(lambda: len(slow.closed) >= 3, deadline * 3, "the slow attempts to end")
            durations = slow.durations[:3]
            print(f"slow attempts lasted {[round(d, 1) for d in durations]} s")
            # The deadline also covers connecting, which a loaded machine can make slow.
            assert all(deadline / 2 <= d <= deadline + 4 for d in durations), durations
            assert slow.most_open <= 3, "two attempts at once to one webhook"
            timed_out = wait_until(
                lambda: [
                    d
                    for app, _ in slow_apps
                    for d in deliveries(http, app)
                    if d["last_attempt"] and d["last_attempt"]["error_class"] == "Timeout"
                ],
                10,
                "the slow deliveries recorded as timed out",
            )
            assert len(timed_out) >= 3
            slow.close()
    finally:
        slow.close()
