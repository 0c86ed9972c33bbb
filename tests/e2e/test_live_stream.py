"""The live read path against a real server (SQLite): the SSE stream, ETags, and the read cache."""

from __future__ import annotations

import itertools
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest

from securekey.domain.keys import fingerprint
from tests.e2e._sse import SseStream
from tests.servers import Server

#: Generous on a shared machine: a release must arrive, in order; how fast is bench/'s job.
ARRIVAL_BOUND = 5.0  # also the stream's read timeout


@dataclass
class LiveApp:
    """An app on the shared server with one add-on attached as ``SECURE`` and an app token."""

    name: str
    addon: str
    token: str


@pytest.fixture(scope="module")
def server(shared_server: Server) -> Server:
    """The shared real server (embedded SQLite default)."""
    return shared_server


@pytest.fixture(scope="module")
def http(server: Server) -> Iterator[httpx.Client]:
    """An operator client for the shared server."""
    with server.client() as client:
        yield client


def new_app(http: httpx.Client) -> LiveApp:
    """A fresh app with an add-on and an app-scoped token."""
    name = f"live-{secrets.token_hex(4)}"
    assert http.post("/apps", json={"name": name}).status_code == 201
    created = http.post(f"/apps/{name}/addons", json={"plan": "securekey:fortnightly"})
    assert created.status_code == 201, created.text
    token = http.post(f"/apps/{name}/tokens", json={})
    assert token.status_code == 201, token.text
    return LiveApp(name, created.json()["name"], token.json()["token"])


def app_client(server: Server, app: LiveApp) -> httpx.Client:
    """A client holding only ``app``'s token."""
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {app.token}"}, timeout=10
    )


def current_release(http: httpx.Client, app: str) -> int:
    """The app's newest release version, from the releases list."""
    newest = http.get(f"/apps/{app}/releases", headers={"Range": "version ..; max=1, order=desc"})
    version: int = newest.json()[0]["version"]
    return version


def rotate(http: httpx.Client, app: LiveApp) -> tuple[int, str, float]:
    """Rotate ``app``'s add-on: (the app's new release, latest fingerprint, when it returned)."""
    answer = http.post(f"/addons/{app.addon}/actions/rotate", json={"emergency": False})
    returned = time.perf_counter()
    assert answer.status_code == 200, answer.text
    body = answer.json()
    (release,) = [r["version"] for r in body["releases"] if r["app"]["name"] == app.name]
    return release, body["fingerprints"]["latest"], returned


def stream_path(app: LiveApp) -> str:
    return f"/apps/{app.name}/config-vars/stream"


def test_stream_sends_the_current_config_on_connect(server: Server, http: httpx.Client) -> None:
    """An app token's stream opens with the app's config, its release as the event id."""
    app = new_app(http)
    with SseStream(server.url, stream_path(app), app.token) as stream:
        assert stream.response.status_code == 200
        assert stream.response.headers["content-type"].startswith("text/event-stream")
        first = stream.next_event()
    with app_client(server, app) as own:
        config = own.get(f"/apps/{app.name}/config-vars").json()
    assert first.type == "config"
    assert first.id == str(current_release(http, app.name))
    assert first.json() == config
    assert set(config) == {"SECURE_KEY"}


def test_every_release_reaches_the_stream_in_order(server: Server, http: httpx.Client) -> None:
    """Rotations and config sets each arrive as the next event, ids rising one release at a time,
    each well within a generous bound of the call returning (timings belong in bench/)."""
    app = new_app(http)
    latencies: list[float] = []
    ids: list[int] = []
    with (
        SseStream(server.url, stream_path(app), app.token) as stream,
        ThreadPoolExecutor(1) as pool,
    ):
        previous = stream.next_event().json()["SECURE_KEY"]
        for step in range(10):
            if step % 3 == 2:
                value = secrets.token_hex(8)

                def set_var(value: str = value) -> tuple[int, float]:
                    answer = http.patch(f"/apps/{app.name}/config-vars", json={"PLAIN": value})
                    returned = time.perf_counter()
                    assert answer.status_code == 200, answer.text
                    return int(answer.headers["ETag"].strip('"')), returned

                pending = pool.submit(set_var)
                event = stream.next_event()
                release, returned = pending.result()
                assert event.json()["PLAIN"] == value
                assert event.json()["SECURE_KEY"] == previous
            else:
                rotation = pool.submit(rotate, http, app)
                event = stream.next_event()
                release, latest_fp, returned = rotation.result()
                latest, old = event.json()["SECURE_KEY"].split(",")
                assert old == previous.split(",")[0]
                assert fingerprint(latest) == latest_fp
                previous = event.json()["SECURE_KEY"]
            assert event.type == "config"
            assert event.id == str(release)
            latencies.append(event.received_at - returned)
            ids.append(int(event.id))
    print("same-server SSE latency after the API call returned (ms):", _ms(latencies))
    assert ids == list(range(ids[0], ids[0] + len(ids))), ids
    assert max(latencies) < ARRIVAL_BOUND


def test_last_event_id_of_the_current_release_skips_the_initial_event(
    server: Server, http: httpx.Client
) -> None:
    """Resuming at the current release sends nothing until the next release."""
    app = new_app(http)
    current = current_release(http, app.name)
    with SseStream(server.url, stream_path(app), app.token, last_event_id=str(current)) as stream:
        answer = http.patch(f"/apps/{app.name}/config-vars", json={"AFTER": "resume"})
        assert answer.status_code == 200
        event = stream.next_event()
    assert event.id == str(current + 1)
    assert event.json()["AFTER"] == "resume"


@pytest.mark.parametrize(
    "resume", ["1", "999999", "not-a-number", "7" * 40, "\u00b2".encode("latin-1")]
)
def test_another_last_event_id_gets_the_current_config(
    server: Server, http: httpx.Client, resume: str | bytes
) -> None:
    """Resuming from any other release (or nonsense) sends the current config at once."""
    app = new_app(http)
    http.patch(f"/apps/{app.name}/config-vars", json={"EXTRA": "1"})
    current = current_release(http, app.name)
    with SseStream(server.url, stream_path(app), app.token, last_event_id=resume) as stream:
        event = stream.next_event()
    assert event.id == str(current)
    assert event.json()["EXTRA"] == "1"


def test_a_revoked_token_stops_receiving_keys(server: Server, http: httpx.Client) -> None:
    """Revoking an app token ends its open stream before the next release is sent on it."""
    name = f"live-{secrets.token_hex(4)}"
    assert http.post("/apps", json={"name": name}).status_code == 201
    addon = http.post(f"/apps/{name}/addons", json={"plan": "securekey:fortnightly"}).json()
    created = http.post(f"/apps/{name}/tokens", json={}).json()
    app = LiveApp(name, addon["name"], created["token"])
    with SseStream(server.url, stream_path(app), app.token) as stream:
        stream.next_event()
        assert http.delete(f"/apps/{name}/tokens/{created['id']}").status_code == 200
        rotate(http, app)
        with pytest.raises(EOFError):
            stream.next_event()


def test_another_apps_token_cannot_watch(server: Server, http: httpx.Client) -> None:
    """A token of one app gets 403 on another app's stream; no token gets 401."""
    mine, theirs = new_app(http), new_app(http)
    with httpx.Client(base_url=server.url, timeout=10) as anonymous:
        wrong = anonymous.get(
            stream_path(theirs), headers={"Authorization": f"Bearer {mine.token}"}
        )
        missing = anonymous.get(stream_path(theirs))
    assert wrong.status_code == 403
    assert wrong.json()["id"] == "forbidden"
    assert theirs.token not in wrong.text
    assert missing.status_code == 401


def test_config_vars_answer_if_none_match_with_304(server: Server, http: httpx.Client) -> None:
    """GET config-vars carries the release as ETag; a matching If-None-Match gets an empty 304."""
    app = new_app(http)
    with app_client(server, app) as own:
        first = own.get(f"/apps/{app.name}/config-vars")
        etag = first.headers["ETag"]
        assert etag == f'"{current_release(http, app.name)}"'
        unchanged = own.get(f"/apps/{app.name}/config-vars", headers={"If-None-Match": etag})
        listed = own.get(f"/apps/{app.name}/config-vars", headers={"If-None-Match": f'"0", {etag}'})
        rotate(http, app)
        changed = own.get(f"/apps/{app.name}/config-vars", headers={"If-None-Match": etag})
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    assert unchanged.headers["ETag"] == etag
    assert listed.status_code == 304
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    assert changed.json()["SECURE_KEY"].split(",")[1] == first.json()["SECURE_KEY"].split(",")[0]


def test_a_cached_read_returns_the_new_pair_right_after_a_rotation(
    server: Server, http: httpx.Client
) -> None:
    """Warm the cache, rotate: the very next read returns the rotated pair."""
    app = new_app(http)
    with app_client(server, app) as own:
        for _ in range(5):
            before = own.get(f"/apps/{app.name}/config-vars")
            for _ in range(3):
                assert own.get(f"/apps/{app.name}/config-vars").json() == before.json()
            release, latest_fp, _ = rotate(http, app)
            after = own.get(f"/apps/{app.name}/config-vars")
            latest, previous = after.json()["SECURE_KEY"].split(",")
            assert after.headers["ETag"] == f'"{release}"'
            assert fingerprint(latest) == latest_fp
            assert previous == before.json()["SECURE_KEY"].split(",")[0]
    metrics = http.get("/metrics").text
    hits = [line for line in metrics.splitlines() if line.startswith("securekey_config_cache_hits")]
    assert hits
    assert float(hits[0].split()[-1]) > 0, "the reads above should have been served from memory"


@dataclass(frozen=True)
class Read:
    started: float
    release: int
    value: str


def test_concurrent_reads_never_return_a_pair_older_than_the_last_rotation(
    server: Server, http: httpx.Client
) -> None:
    """Readers in threads during rotations see, at every read, at least the last completed one."""
    app = new_app(http)
    stop = threading.Event()
    reads: list[list[Read]] = [[] for _ in range(6)]

    def reader(out: list[Read]) -> None:
        with app_client(server, app) as own:
            while not stop.is_set():
                started = time.perf_counter()
                answer = own.get(f"/apps/{app.name}/config-vars")
                assert answer.status_code == 200
                out.append(Read(started, int(answer.headers["ETag"].strip('"')), answer.text))

    rotations: list[tuple[float, int, str]] = []
    threads = [threading.Thread(target=reader, args=(out,)) for out in reads]
    for thread in threads:
        thread.start()
    try:
        for _ in range(15):
            release, latest_fp, returned = rotate(http, app)
            rotations.append((returned, release, latest_fp))
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    fingerprints = {release: fp for _, release, fp in rotations}
    checked = 0
    for out in reads:
        assert out, "every reader made at least one read"
        for earlier, later in itertools.pairwise(out):
            assert later.release >= earlier.release, "a reader went back in time"
        for read in out:
            done = [release for returned, release, _ in rotations if returned < read.started]
            if done:
                checked += 1
                assert read.release >= max(done), "a read returned a pair older than a rotation"
            if read.release in fingerprints:
                latest = httpx.Response(200, content=read.value).json()["SECURE_KEY"]
                assert fingerprint(latest.split(",")[0]) == fingerprints[read.release]
    print(f"concurrent reads checked against completed rotations: {checked}")
    assert checked > 0


def _ms(values: list[float]) -> str:
    return ", ".join(f"{v * 1000:.1f}" for v in values)


def test_if_none_match_accepts_star_and_weak_tags(http: httpx.Client) -> None:
    """`*` and a weak `W/"n"` tag for the current release both answer 304; a stale one 200."""
    app = new_app(http)
    url = f"/apps/{app.name}/config-vars"
    etag = http.get(url).headers["ETag"]
    for header in ("*", f"W/{etag}", f'"0", {etag}'):
        assert http.get(url, headers={"If-None-Match": header}).status_code == 304, header
    assert http.get(url, headers={"If-None-Match": '"0"'}).status_code == 200


def test_a_stream_sent_with_a_body_over_the_limit_ends(server: Server, http: httpx.Client) -> None:
    """A stream request carrying a chunked body past 64 KiB does not keep its stream (and its
    slot) open: the server ends the response instead of holding the connection."""
    app = new_app(http)
    host, port = server.url.rsplit("//", 1)[1].rsplit(":", 1)
    head = (
        f"GET /apps/{app.name}/config-vars/stream HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {app.token}\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    chunk = b"x" * 70_000
    with socket.create_connection((host, int(port)), timeout=ARRIVAL_BOUND) as sock:
        sock.sendall(head + b"%x\r\n" % len(chunk) + chunk + b"\r\n0\r\n\r\n")
        received = b""
        deadline = time.monotonic() + 3 * ARRIVAL_BOUND
        while time.monotonic() < deadline and not received.endswith(b"\r\n0\r\n\r\n"):
            try:
                data = sock.recv(65536)
            except TimeoutError:
                break
            if not data:
                break
            received += data
    assert received.startswith(b"HTTP/1.1 200"), received[:200]
    assert received.endswith(b"\r\n0\r\n\r\n"), received[-200:]  # the response was finished
