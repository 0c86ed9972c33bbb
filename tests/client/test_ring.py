"""KeyRing: parsing, the LATEST-then-PREVIOUS rule, atomic swaps, and the shared refresh."""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time

import httpx
import pytest

from securekey.client import (
    FakeSecureKeyServer,
    KeyPair,
    KeyRing,
    StaticKeyRing,
    write_env_file,
)
from securekey.exceptions import NotFoundError, ValidationError

BAD_VALUES = [
    "",
    "ABC",
    "A" * 64,
    "A" * 64 + "," + "B" * 63,
    "A" * 64 + "," + "B" * 64 + "," + "C" * 64,
    "Z" * 64 + "," + "B" * 64,
]


@pytest.mark.parametrize("value", BAD_VALUES)
def test_a_malformed_value_is_refused_without_echoing_it(value: str) -> None:
    """A value that is not LATEST,PREVIOUS raises ValidationError whose message hides it."""
    with pytest.raises(ValidationError) as caught:
        KeyRing.from_value(value)
    if len(value) > 8:
        assert value not in str(caught.value)
        assert value[:20] not in caught.value.message


def test_a_ring_presents_latest_and_accepts_both_keys() -> None:
    """present() is LATEST; verify names the slot matched, LATEST before PREVIOUS."""
    pair = KeyPair.fresh()
    ring = KeyRing.from_value(pair.value)
    assert ring.present() == pair.latest.hex
    assert ring.verify(pair.latest.hex) == "latest"
    assert ring.verify(pair.previous.hex.lower()) == "previous"
    assert ring.verify(KeyPair.fresh().latest.hex) is None
    assert ring.verify("nonsense") is None


def test_a_ring_signs_with_latest_and_checks_both() -> None:
    """sign() uses LATEST; verify_signature tells which key made a MAC."""
    ring = StaticKeyRing()
    mac = ring.sign(b"hello")
    assert ring.verify_signature(b"hello", mac) == "latest"
    ring.rotate()
    assert ring.verify_signature(b"hello", mac) == "previous"
    ring.rotate()
    assert ring.verify_signature(b"hello", mac) is None
    assert ring.verify_signature(b"other", ring.sign(b"hello")) is None


def test_key_for_names_keys_by_fingerprint() -> None:
    """key_for finds LATEST or PREVIOUS by fingerprint and nothing else."""
    ring = StaticKeyRing()
    pair = ring.current
    assert ring.key_for(pair.latest.fingerprint) == ("latest", pair.latest)
    assert ring.key_for(pair.previous.fingerprint) == ("previous", pair.previous)
    assert ring.key_for("000000000000") is None


def test_repr_shows_fingerprints_only() -> None:
    """A ring's repr never contains key material."""
    ring = StaticKeyRing()
    text = repr(ring)
    assert ring.current.latest.hex not in text
    assert ring.current.latest.fingerprint in text


def test_a_ring_needs_a_key_pair() -> None:
    """Passing a string to the constructor is a TypeError pointing at from_value."""
    with pytest.raises(TypeError, match="from_value"):
        KeyRing("A" * 64 + "," + "B" * 64)  # type: ignore[arg-type]


def test_swap_runs_callbacks_once_per_change() -> None:
    """Callbacks see each new pair once; an equal pair is no change; unsubscribing works."""
    ring = StaticKeyRing()
    seen: list[KeyPair] = []
    unsubscribe = ring.on_change(seen.append)
    assert not ring.swap(ring.current)
    new = ring.rotate()
    assert seen == [new]
    unsubscribe()
    ring.rotate()
    assert seen == [new]


def test_a_failing_callback_does_not_undo_the_swap(caplog: pytest.LogCaptureFixture) -> None:
    """A callback that raises is logged and the other callbacks still run."""
    ring = StaticKeyRing()
    after: list[KeyPair] = []

    def broken(_: KeyPair) -> None:
        raise RuntimeError("boom")

    ring.on_change(broken)
    ring.on_change(after.append)
    with caplog.at_level(logging.ERROR, "securekey.client"):
        new = ring.rotate()
    assert ring.current == new
    assert after == [new]
    assert "callback failed" in caplog.text


def test_concurrent_swaps_report_each_change_once_in_the_order_it_took_effect() -> None:
    """Threads swapping among three pairs: every callback is a real change (never the pair
    already in force), True is returned once per callback, and the last callback's pair is
    the one in force."""
    ring = StaticKeyRing()
    pairs = [ring.current, ring.current.rotated(), KeyPair.fresh()]
    seen: list[KeyPair] = []
    # Yielding the GIL inside the callback gives racing swaps every chance to interleave.
    ring.on_change(lambda pair: (time.sleep(0), seen.append(pair)))
    changes: list[bool] = []
    start = threading.Barrier(4)

    def swap_many(offset: int) -> None:
        start.wait(10)
        results = [ring.swap(pairs[(offset + i) % 3]) for i in range(300)]
        changes.extend(results)  # list.extend is atomic under the GIL

    writers = [threading.Thread(target=swap_many, args=(n,)) for n in range(4)]
    for t in writers:
        t.start()
    for t in writers:
        t.join(30)
    assert not any(t.is_alive() for t in writers)
    assert changes.count(True) == len(seen) > 0
    assert seen[0] != pairs[0]
    assert all(a != b for a, b in itertools.pairwise(seen))
    assert seen[-1] == ring.current


def test_from_environ_reads_the_named_var() -> None:
    """from_environ parses the named variable and names a missing one without values."""
    pair = KeyPair.fresh()
    ring = KeyRing.from_environ("SERVICE_ONE_SECURE_KEY", {"SERVICE_ONE_SECURE_KEY": pair.value})
    assert ring.current == pair
    with pytest.raises(NotFoundError, match="SECURE_KEY"):
        KeyRing.from_environ("SECURE_KEY", {})


@pytest.mark.anyio
async def test_a_ring_without_a_fetcher_never_refreshes() -> None:
    """refresh() on a plain ring returns False at once and changes nothing."""
    ring = KeyRing(KeyPair.fresh())
    assert not ring.can_refresh
    assert not ring.refresh()
    assert not await ring.arefresh()
    ring.refresh_soon()
    assert ring.refreshes == 0


def test_from_env_file_refreshes_by_reading_the_file_again(tmp_path: object) -> None:
    """A ring over an env file learns a rotation written to the file when it refreshes."""
    path = f"{tmp_path}/app.env"
    pair = KeyPair.fresh()
    write_env_file(path, {"SECURE_KEY": pair.value, "OTHER": "x"})
    ring = KeyRing.from_env_file(path, min_refresh_interval=0)
    assert ring.current == pair
    newer = pair.rotated()
    write_env_file(path, {"SECURE_KEY": newer.value})
    assert ring.refresh()
    assert ring.current == newer
    assert not ring.refresh()


def test_a_failed_refresh_keeps_the_keys_and_logs_no_secret(
    tmp_path: object, caplog: pytest.LogCaptureFixture
) -> None:
    """When the source breaks, refresh() returns False, keeps the pair, and logs a safe line."""
    path = f"{tmp_path}/app.env"
    pair = KeyPair.fresh()
    write_env_file(path, {"SECURE_KEY": pair.value})
    ring = KeyRing.from_env_file(path, min_refresh_interval=0)
    write_env_file(path, {"SECURE_KEY": "not-a-pair-" + pair.latest.hex})
    with caplog.at_level(logging.WARNING, "securekey.client"):
        assert not ring.refresh()
    assert ring.current == pair
    assert "Refreshing the key ring failed" in caplog.text
    assert pair.latest.hex not in caplog.text


def test_from_server_reads_the_var_and_refreshes_conditionally(
    fake: FakeSecureKeyServer,
) -> None:
    """from_server does one GET; its refresh is a conditional GET that sees rotations."""
    ring = KeyRing.from_server(
        fake.url, fake.app, fake.token, transport=fake.sync_transport(), min_refresh_interval=0
    )
    assert ring.current == fake.pair()
    assert not ring.refresh()
    assert fake.counts["not_modified"] == 1
    new = fake.rotate()
    assert ring.refresh()
    assert ring.current == new


class _ClosingTransport(httpx.BaseTransport):
    """Delegates to another transport and records whether the client closed it."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.closed = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.closed = True


def test_from_server_closes_its_connection_when_closed_or_failed(
    fake: FakeSecureKeyServer,
) -> None:
    """close() (or leaving a with block) releases the HTTP client; so does a failed start."""
    transport = _ClosingTransport(fake.sync_transport())
    with KeyRing.from_server(fake.url, fake.app, fake.token, transport=transport) as ring:
        assert ring.current == fake.pair()
        assert not transport.closed
    assert transport.closed
    failing = _ClosingTransport(fake.sync_transport())
    with pytest.raises(NotFoundError):
        KeyRing.from_server(fake.url, fake.app, fake.token, var="NOPE_KEY", transport=failing)
    assert failing.closed


def test_from_server_reports_a_missing_var_by_name(fake: FakeSecureKeyServer) -> None:
    """Asking for a var the app does not have is NotFoundError naming the var."""
    with pytest.raises(NotFoundError, match="OTHER_KEY"):
        KeyRing.from_server(
            fake.url, fake.app, fake.token, var="OTHER_KEY", transport=fake.sync_transport()
        )


class _SlowFetcher:
    """A fetcher that counts calls and blocks until released, to make callers overlap."""

    def __init__(self, pair: KeyPair) -> None:
        self.pair = pair
        self.calls = 0
        self.entered = threading.Event()
        self.release = threading.Event()

    def fetch(self) -> KeyPair | None:
        self.calls += 1
        self.entered.set()
        assert self.release.wait(5)
        return self.pair

    async def afetch(self) -> KeyPair | None:
        self.calls += 1
        self.entered.set()
        await asyncio.to_thread(self.release.wait, 5)
        return self.pair


def test_concurrent_refreshes_share_one_fetch() -> None:
    """Threads that ask for a refresh while one is pending all share a single fetch."""
    start = KeyPair.fresh()
    fetcher = _SlowFetcher(start.rotated())
    ring = KeyRing(start, fetcher=fetcher, min_refresh_interval=0)
    first = threading.Thread(target=ring.refresh)
    first.start()
    assert fetcher.entered.wait(5)
    # These arrive while the first fetch runs: they must share the *next* one, not this one.
    results: list[bool] = []
    others = [threading.Thread(target=lambda: results.append(ring.refresh())) for _ in range(8)]
    for t in others:
        t.start()
    fetcher.release.set()
    first.join()
    for t in others:
        t.join()
    assert fetcher.calls == 2
    assert ring.refreshes == 2
    assert ring.current == fetcher.pair


def test_refreshes_are_rate_limited_by_waiting_not_by_skipping() -> None:
    """A refresh asked for right after another waits for the interval, then really fetches."""
    ring = StaticKeyRing(min_refresh_interval=0.2)
    ring.refresh()
    staged = ring.stage()
    began = time.monotonic()
    assert ring.refresh()
    assert time.monotonic() - began >= 0.15
    assert ring.current == staged
    assert ring.refreshes == 2


@pytest.mark.anyio
async def test_async_refreshes_share_one_fetch() -> None:
    """Many coroutines refreshing at once cause one fetch, and all see the new pair."""
    ring = StaticKeyRing()
    staged = ring.stage()
    results = await asyncio.gather(*(ring.arefresh() for _ in range(50)))
    assert all(results)
    assert ring.refreshes == 1
    assert ring.current == staged


@pytest.mark.anyio
async def test_a_cancelled_caller_does_not_cancel_the_shared_refresh() -> None:
    """Cancelling the coroutine that started a refresh leaves the others with its result."""
    start = KeyPair.fresh()
    fetcher = _SlowFetcher(start.rotated())
    ring = KeyRing(start, fetcher=fetcher, min_refresh_interval=0)
    leader = asyncio.ensure_future(ring.arefresh())
    await asyncio.to_thread(fetcher.entered.wait, 5)
    follower = asyncio.ensure_future(ring.arefresh())
    leader.cancel()
    fetcher.release.set()
    assert await follower
    assert ring.current == fetcher.pair


def test_static_ring_stage_is_found_by_the_next_refresh_only() -> None:
    """stage() changes nothing until a refresh, and is consumed by it."""
    ring = StaticKeyRing()
    before = ring.current
    staged = ring.stage()
    assert ring.current == before
    assert ring.refresh()
    assert ring.current == staged
    assert not ring.refresh()


def test_static_ring_accepts_a_value_string() -> None:
    """StaticKeyRing takes a pair, a LATEST,PREVIOUS string, or nothing (a fresh pair)."""
    pair = KeyPair.fresh()
    assert StaticKeyRing(pair.value).current == pair
    assert StaticKeyRing(pair).current == pair
    assert StaticKeyRing().current != pair


def test_refresh_soon_returns_at_once_and_refreshes_in_the_background() -> None:
    """refresh_soon starts a refresh without waiting for it."""
    ring = StaticKeyRing()
    changed = threading.Event()
    ring.on_change(lambda _: changed.set())
    staged = ring.stage()
    ring.refresh_soon()
    assert changed.wait(5)
    assert ring.current == staged


@pytest.mark.anyio
async def test_http_errors_during_refresh_are_contained() -> None:
    """A transport failure inside a fetch makes refresh() return False, not raise."""

    class Broken:
        def fetch(self) -> KeyPair | None:
            raise httpx.ConnectError("refused")

        async def afetch(self) -> KeyPair | None:
            raise httpx.ConnectError("refused")

    ring = KeyRing(KeyPair.fresh(), fetcher=Broken(), min_refresh_interval=0)
    assert not ring.refresh()
    assert not await ring.arefresh()
