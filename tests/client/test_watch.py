"""Live refresh: the watcher follows the stream, reconnects, polls, and keeps rings current."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from securekey.api.routes.stream import SHUTDOWN_EVENT
from securekey.client import (
    AsyncWatchedKeyRing,
    Backoff,
    ConfigSnapshot,
    ConfigWatcher,
    FakeSecureKeyServer,
    KeyPair,
    ServerUnavailableError,
    WatchedKeyRing,
)
from securekey.client._sse import SSEParser
from securekey.exceptions import (
    AuthenticationError,
    ForbiddenError,
    NotFoundError,
    ValidationError,
)
from tests.client.conftest import serve

FAST = {"backoff": Backoff(base=0.01, cap=0.05)}


def _watcher(fake: FakeSecureKeyServer, **kwargs: object) -> ConfigWatcher:
    options: dict[str, object] = {"transport": fake.transport(), **FAST, **kwargs}
    return ConfigWatcher(fake.url, fake.app, fake.token, **options)  # type: ignore[arg-type]


async def _next(queue: asyncio.Queue[ConfigSnapshot]) -> ConfigSnapshot:
    return await asyncio.wait_for(queue.get(), 5)


@contextlib.asynccontextmanager
async def _following(
    watcher: ConfigWatcher,
) -> AsyncIterator[asyncio.Queue[ConfigSnapshot]]:
    """Run ``watcher`` after its first fetch; yields the queue of the snapshots it applies."""
    queue: asyncio.Queue[ConfigSnapshot] = asyncio.Queue()
    await watcher.fetch()
    watcher.add_listener(queue.put_nowait)
    task = asyncio.ensure_future(watcher.run())
    try:
        yield queue
    finally:
        await watcher.stop(task)


async def _until(condition: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    """Poll ``condition`` in the running loop until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.01)


def test_backoff_grows_with_jitter_up_to_its_cap() -> None:
    """Each delay lies in [d/2, d] for d doubling from base to cap, and reset starts over."""
    backoff = Backoff(base=1, cap=8, rng=lambda: 1.0)
    assert [backoff.next() for _ in range(5)] == [1, 2, 4, 8, 8]
    backoff.reset()
    low = Backoff(base=1, cap=8, rng=lambda: 0.0)
    assert [low.next() for _ in range(4)] == [0.5, 1, 2, 4]
    assert backoff.next() == 1


@pytest.mark.anyio
async def test_the_watcher_reports_every_release_in_order(fake: FakeSecureKeyServer) -> None:
    """Listeners get each new snapshot once, oldest first, with names-only reprs."""
    watcher = _watcher(fake)
    queue: asyncio.Queue[ConfigSnapshot] = asyncio.Queue()
    watcher.add_listener(queue.put_nowait)
    first = await watcher.fetch()
    assert first.release == 1
    assert (await _next(queue)).release == 1
    task = asyncio.ensure_future(watcher.run())
    new = fake.rotate()
    got = await _next(queue)
    assert (got.release, got.pair("SECURE_KEY")) == (2, new)
    fake.set_config({"OTHER": "x"})
    assert (await _next(queue)).vars["OTHER"] == "x"
    assert new.latest.hex not in repr(got)
    await watcher.stop(task)


@pytest.mark.anyio
async def test_the_watcher_resumes_with_last_event_id(fake: FakeSecureKeyServer) -> None:
    """After the stream drops, the watcher reconnects saying which release it has."""
    watcher = _watcher(fake)
    async with _following(watcher) as queue:
        fake.rotate()
        assert (await _next(queue)).release == 2
        fake.end_streams()
        fake.rotate()
        assert (await _next(queue)).release == 3
        deadline = time.monotonic() + 10
        while watcher.streams_opened < 2:  # the reconnect is what we are checking
            assert time.monotonic() < deadline, "the watcher never reconnected"
            fake.set_config({"N": str(fake.release())})
            await _next(queue)
        assert fake.last_event_ids[0] == "1"
        assert fake.last_event_ids[1] in ("2", "3", "4")


@pytest.mark.anyio
async def test_a_graceful_end_of_stream_is_a_quiet_reconnect_after_the_retry_hint(
    fake: FakeSecureKeyServer, caplog: pytest.LogCaptureFixture
) -> None:
    """``event: shutdown`` is no failure: no warning, and the watcher reconnects after the
    server's ``retry:`` hint (not its own long backoff), resuming with Last-Event-ID."""
    retry = 0.3
    caplog.set_level(logging.INFO, "securekey.client")
    # Backoff and polling so slow that only honouring ``retry`` can reconnect in time.
    watcher = _watcher(fake, backoff=Backoff(base=60, cap=60), poll_interval=60)
    async with _following(watcher) as queue:
        await _until(lambda: fake.open_streams >= 1, "the stream is open")
        ended = time.monotonic()
        fake.end_streams(retry=retry)
        fake.rotate()  # made between the two streams: the resumed one must bring it
        assert (await asyncio.wait_for(queue.get(), 10)).release == 2
        took = time.monotonic() - ended
        assert watcher.streams_opened == 2
        assert watcher.shutdowns_seen == 1
        assert fake.last_event_ids == ["1", "1"]
    assert retry <= took < 10, took
    assert "Lost the config-var stream" not in caplog.text
    assert [r.levelname for r in caplog.records if "shut down" in r.getMessage()] == ["INFO"]


def test_the_servers_shutdown_event_is_what_the_sdk_understands() -> None:
    """The real server's last event parses as ``shutdown`` with its retry hint in ms."""
    parser = SSEParser()
    [event] = parser.feed(SHUTDOWN_EVENT)
    assert event.event == "shutdown"
    assert parser.retry == 1000


@pytest.mark.anyio
async def test_the_watcher_polls_when_the_stream_is_missing(fake: FakeSecureKeyServer) -> None:
    """With no stream endpoint, conditional GETs every poll_interval still deliver changes."""
    fake.stream_enabled = False
    watcher = _watcher(fake, poll_interval=0.02, backoff=Backoff(base=30, cap=30))
    async with _following(watcher) as queue:
        new = fake.rotate()
        assert (await _next(queue)).pair("SECURE_KEY") == new
        assert fake.counts["stream"] == 0
        assert watcher.streams_opened == 0


@pytest.mark.anyio
async def test_the_watcher_rides_out_an_outage(
    fake: FakeSecureKeyServer, caplog: pytest.LogCaptureFixture
) -> None:
    """While the server answers 503 the watcher keeps trying, then catches up; it logs once."""
    caplog.set_level(logging.WARNING, "securekey.client")
    watcher = _watcher(fake, poll_interval=0.01)
    queue: asyncio.Queue[ConfigSnapshot] = asyncio.Queue()
    await watcher.fetch()
    watcher.add_listener(queue.put_nowait)
    fake.available = False
    task = asyncio.ensure_future(watcher.run())
    await _until(lambda: fake.counts["unavailable"] >= 3, "it failed a few times")
    fake.rotate()
    fake.available = True
    assert (await _next(queue)).release == 2
    await watcher.stop(task)
    assert caplog.text.count("Lost the config-var stream") == 1


@pytest.mark.anyio
async def test_apply_delay_postpones_pushed_changes_but_not_fetches(
    fake: FakeSecureKeyServer,
) -> None:
    """apply_delay holds back streamed changes; an explicit fetch applies at once."""
    watcher = _watcher(fake, apply_delay=lambda: 30.0)
    await watcher.fetch()
    task = asyncio.ensure_future(watcher.run())
    fake.rotate()
    await _until(lambda: fake.counts["events"] >= 1, "the change is pushed")
    assert watcher.release == 1  # pushed, but held back
    assert (await watcher.fetch()).release == 2
    await watcher.stop(task)


@pytest.mark.parametrize(
    ("token", "app", "error"),
    [
        ("wrong", "service-1", AuthenticationError),
        ("test-token", "service-2", ForbiddenError),
        ("test-token", "nobody", ForbiddenError),
    ],
)
def test_connect_fails_clearly(
    fake: FakeSecureKeyServer, token: str, app: str, error: type[Exception]
) -> None:
    """Refusals at connect raise the matching SecureKeyError and leave no thread behind."""
    fake.add_app("service-2", "t2")
    before = threading.active_count()
    with pytest.raises(error):
        WatchedKeyRing.connect(fake.url, app, token, transport=fake.transport())
    assert threading.active_count() == before


def test_connect_refuses_an_unknown_option_by_name(fake: FakeSecureKeyServer) -> None:
    """connect()'s options are one set: a misspelt one is a TypeError naming it, no thread left."""
    before = threading.active_count()
    with pytest.raises(TypeError, match="poll_intervall"):
        WatchedKeyRing.connect(
            fake.url,
            fake.app,
            fake.token,
            transport=fake.transport(),
            poll_intervall=1.0,  # type: ignore[call-arg]
        )
    assert threading.active_count() == before


def test_connect_names_a_missing_var_and_hides_a_bad_value(fake: FakeSecureKeyServer) -> None:
    """A var that is absent is named; one that is no pair is refused without its value."""
    with pytest.raises(NotFoundError, match="NOPE_KEY"):
        WatchedKeyRing.connect(
            fake.url, fake.app, fake.token, var="NOPE_KEY", transport=fake.transport()
        )
    secretish = "C" * 64
    fake.set_config({"SECURE_KEY": secretish})
    with pytest.raises(ValidationError) as caught:
        WatchedKeyRing.connect(fake.url, fake.app, fake.token, transport=fake.transport())
    assert secretish not in str(caught.value)


def test_connect_to_nothing_is_server_unavailable() -> None:
    """Nobody listening is ServerUnavailableError naming the host, not a traceback of httpx."""
    with pytest.raises(ServerUnavailableError, match=r"127\.0\.0\.1:9"):
        WatchedKeyRing.connect("http://127.0.0.1:9", "service-1", "t", timeout=2)


def test_a_watched_ring_swaps_from_its_thread(fake: FakeSecureKeyServer) -> None:
    """WatchedKeyRing follows rotations in the background; close() ends its thread."""
    fake.add_app("service-2", "t2", {"SERVICE_ONE_SECURE_KEY": fake.pair().value})
    ring = WatchedKeyRing.connect(
        fake.url, "service-2", "t2", var="SERVICE_ONE_SECURE_KEY", transport=fake.transport()
    )
    with ring:
        changed = threading.Event()
        ring.on_change(lambda _: changed.set())
        new = fake.rotate()
        assert changed.wait(5)
        assert ring.current == new
        assert ring.release == 2
        assert ring.var == "SERVICE_ONE_SECURE_KEY"
    assert not any(t.name.startswith("securekey-watch") for t in threading.enumerate())


def test_a_watched_ring_refreshes_from_any_thread(fake: FakeSecureKeyServer) -> None:
    """refresh() from a request thread is one conditional GET on the watcher's loop."""
    fake.stream_enabled = False  # only refresh can bring news
    with WatchedKeyRing.connect(
        fake.url,
        fake.app,
        fake.token,
        transport=fake.transport(),
        backoff=Backoff(base=30, cap=30),
        poll_interval=30,
        min_refresh_interval=0,
    ) as ring:
        new = fake.rotate()
        assert ring.refresh()
        assert ring.current == new
        assert not ring.refresh()


def test_a_watched_ring_keeps_its_keys_when_the_var_goes_bad(
    fake: FakeSecureKeyServer, caplog: pytest.LogCaptureFixture
) -> None:
    """If the var vanishes or stops being a pair, the ring keeps the keys and says so."""
    with WatchedKeyRing.connect(fake.url, fake.app, fake.token, transport=fake.transport()) as ring:
        pair = ring.current
        releases: queue.Queue[int] = queue.Queue()
        ring.watcher.add_listener(lambda snapshot: releases.put(snapshot.release))
        with caplog.at_level(logging.WARNING, "securekey.client"):
            fake.set_config({"SECURE_KEY": None})
            assert releases.get(timeout=5) == 2
            fake.set_config({"SECURE_KEY": "garbage"})
            assert releases.get(timeout=5) == 3
            assert ring.current == pair
            good = KeyPair.fresh()
            fake.set_config({"SECURE_KEY": good.value})
            assert releases.get(timeout=5) == 4
        assert ring.current == good
        assert "is not set at release v2" in caplog.text
        assert "is no key pair" in caplog.text
        assert "garbage" not in caplog.text
        assert pair.latest.hex not in caplog.text


@pytest.mark.anyio
async def test_an_async_ring_follows_rotations_in_the_callers_loop(
    fake: FakeSecureKeyServer,
) -> None:
    """AsyncWatchedKeyRing swaps in the running loop and refreshes from loop and threads."""
    async with await AsyncWatchedKeyRing.connect(
        fake.url, fake.app, fake.token, transport=fake.transport(), min_refresh_interval=0
    ) as ring:
        changed = asyncio.Event()
        ring.on_change(lambda _: changed.set())
        new = fake.rotate()
        await asyncio.wait_for(changed.wait(), 5)
        assert ring.current == new
        fake.stream_enabled = False
        fake.end_streams()
        newer = fake.rotate()
        assert await ring.arefresh()
        assert ring.current == newer
        newest = fake.rotate()
        assert await asyncio.to_thread(ring.refresh)
        assert ring.current == newest
        with pytest.raises(RuntimeError, match="deadlock"):
            ring.refresh()


def test_a_silent_stream_is_dropped_and_reopened() -> None:
    """Without pings within read_timeout the watcher reconnects, resuming from its release."""
    fake = FakeSecureKeyServer(ping_interval=60)
    served = serve(fake)
    try:
        with WatchedKeyRing.connect(
            served.url, fake.app, fake.token, read_timeout=0.2, backoff=Backoff(0.01, 0.02)
        ) as ring:
            deadline = time.monotonic() + 10
            while ring.watcher.streams_opened < 2:
                assert time.monotonic() < deadline, "never reconnected"
                time.sleep(0.02)
            assert fake.last_event_ids[:2] == ["1", "1"]
    finally:
        fake.shutdown()
        served.stop()


def test_a_ring_survives_a_server_restart_and_catches_up() -> None:
    """When the server goes away and comes back, the ring learns what changed meanwhile."""
    fake = FakeSecureKeyServer()
    served = serve(fake)
    port = served.port
    with WatchedKeyRing.connect(
        served.url, fake.app, fake.token, backoff=Backoff(0.01, 0.05), poll_interval=0.05
    ) as ring:
        fake.available = False
        fake.end_streams()
        served.stop()
        new = fake.rotate()  # made while the server is down
        fake.available = True
        changed = threading.Event()
        ring.on_change(lambda _: changed.set())
        served = serve(fake, port=port)
        try:
            assert changed.wait(10)
            assert ring.current == new
        finally:
            fake.shutdown()
            served.stop()


@pytest.mark.anyio
async def test_the_watcher_reads_vars_with_null_values_as_unset() -> None:
    """A null config value (Heroku's unset marker) is left out of the snapshot."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"A": "1", "B": None}, headers={"ETag": '"4"'})

    watcher = ConfigWatcher("http://s", "a", "t", transport=httpx.MockTransport(handler), **FAST)  # type: ignore[arg-type]
    snapshot = await watcher.fetch()
    assert (snapshot.release, dict(snapshot.vars)) == (4, {"A": "1"})
    await watcher.aclose()


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (httpx.Response(200, json={"A": "1"}), "without an ETag"),
        (httpx.Response(200, content=b"<html>", headers={"ETag": '"1"'}), "not JSON"),
        (httpx.Response(200, json=["A"], headers={"ETag": '"1"'}), "not an object"),
        (httpx.Response(200, json={"A": 1}, headers={"ETag": '"1"'}), "not a string"),
        (httpx.Response(502, json={"id": "x", "message": "down"}), "answered 502: down"),
        (httpx.Response(418), "answered 418"),
    ],
)
@pytest.mark.anyio
async def test_bad_server_answers_become_clear_errors(
    response: httpx.Response, message: str
) -> None:
    """Answers the protocol does not allow are SecureKeyErrors with a one-line reason."""
    watcher = ConfigWatcher("http://s", "a", "t", transport=httpx.MockTransport(lambda _: response))
    with pytest.raises(Exception, match=message) as caught:
        await watcher.fetch()
    assert "\n" not in str(caught.value)
    await watcher.aclose()


@pytest.mark.anyio
async def test_an_unexpected_error_does_not_stop_the_watcher(
    fake: FakeSecureKeyServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Even an error nobody planned for is logged, and the watcher carries on."""
    inner = fake.transport()

    class Flaky(httpx.AsyncBaseTransport):
        failed = False

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/stream") and not self.failed:
                self.failed = True
                raise RuntimeError("surprise")
            return await inner.handle_async_request(request)

    caplog.set_level(logging.ERROR, "securekey.client")
    async with _following(_watcher(fake, transport=Flaky())) as queue:
        fake.rotate()
        assert (await _next(queue)).release == 2
    assert "Unexpected error following service-1" in caplog.text
