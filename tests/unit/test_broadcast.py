"""The broadcast hub's rules, in one event loop: newest config only, never older; revoked
tokens and deleted apps end their streams; a late subscriber catches up; shutdown says retry."""

from __future__ import annotations

import asyncio

import pytest

from securekey.api.broadcast import DELETED_EVENT, SHUTDOWN_EVENT, ReleaseHub, Watcher
from securekey.api.live import CachedConfig
from securekey.exceptions import NotFoundError
from securekey.services import ReleaseNotice
from securekey.services.ports import IDENTITY_CHANGED, TOKEN_REVOKED

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    """The hub is built on asyncio."""
    return "asyncio"


class Configs:
    """What the hub loads: each app's config at its current release; counts the loads."""

    def __init__(self) -> None:
        self.release: dict[str, int] = {}
        self.loads = 0

    async def load(self, app_id: str) -> CachedConfig:
        self.loads += 1
        if app_id not in self.release:
            raise NotFoundError("app", app_id)
        release = self.release[app_id]
        return CachedConfig(app_id, app_id, release, b'{"R":"%d"}' % release, 0.0)


async def allowed(_watcher: Watcher) -> bool:
    return True


def hub_over(configs: Configs) -> ReleaseHub:
    hub = ReleaseHub()
    hub.bind(asyncio.get_running_loop())
    hub.connect(configs.load, allowed, lambda _token: None, 60.0)
    return hub


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_slow_watcher_gets_the_newest_release_only_and_never_an_older_one() -> None:
    """Three releases while a watcher is not reading leave one event pending, the newest;
    an older release offered afterwards is ignored; one load serves every watcher."""
    configs = Configs()
    configs.release["a"] = 1
    hub = hub_over(configs)
    watchers = [Watcher("a", f"t{i}", "h", 1, "x") for i in range(50)]
    for w in watchers:
        hub.subscribe(w)
    for release in (2, 3, 4):
        configs.release["a"] = release
        hub.publish([ReleaseNotice("a", release)])
        await settle()
    assert configs.loads <= 3
    for w in watchers:
        assert await w.next() == b'id: 4\nevent: config\ndata: {"R":"4"}\n\n'
        w.offer(3, b"older")
        w.ping()
        assert await w.next() == b": ping\n\n"


async def test_revocation_ends_only_that_tokens_streams_and_drops_pending_keys() -> None:
    """A TOKEN_REVOKED notice ends its token's streams without sending their pending config;
    a later subscription with that token ends at once; other tokens carry on."""
    configs = Configs()
    configs.release["a"] = 2
    hub = hub_over(configs)
    revoked, kept = Watcher("a", "bad", "h", 1, "x"), Watcher("a", "good", "h", 1, "x")
    hub.subscribe(revoked)
    hub.subscribe(kept)
    hub.publish([ReleaseNotice("a", 2), ReleaseNotice("bad", TOKEN_REVOKED)])
    await settle()
    assert await revoked.next() is None
    assert revoked.last() == b""
    assert (await kept.next() or b"").startswith(b"id: 2\n")
    late = Watcher("a", "bad", "h", 2, "x")
    hub.subscribe(late)
    assert await late.next() is None


async def test_a_subscriber_racing_a_release_catches_up_and_deleted_apps_say_so() -> None:
    """A watcher whose first snapshot predates a release already heard gets that release;
    destroying the app ends every stream with ``event: deleted``."""
    configs = Configs()
    configs.release["a"] = 5
    hub = hub_over(configs)
    hub.publish([ReleaseNotice("a", 5)])  # heard before anybody watched: nothing loaded
    await settle()
    behind = Watcher("a", "t", "h", 4, "x")
    hub.subscribe(behind)
    assert (await behind.next() or b"").startswith(b"id: 5\n")
    del configs.release["a"]
    hub.publish([ReleaseNotice("a", IDENTITY_CHANGED)])
    await settle()
    assert await behind.next() is None
    assert behind.last() == DELETED_EVENT


async def test_shutdown_ends_every_stream_with_a_retry_hint() -> None:
    """``close`` ends open streams after the shutdown event, and refuses new ones the same way."""
    hub = hub_over(Configs())
    open_one = Watcher("a", "t", "h", 1, "x")
    hub.subscribe(open_one)
    hub.close()
    later = Watcher("a", "t", "h", 1, "x")
    hub.subscribe(later)
    for w in (open_one, later):
        assert await w.next() is None
        assert w.last() == SHUTDOWN_EVENT


class Socket:
    """The server's ``send`` for one stream: records bodies; while ``full`` is set, a send
    waits for it (a client that reads slowly), as uvicorn's does on a full write buffer."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.full: asyncio.Future[None] | None = None
        self.broken = False

    async def send(self, message: dict[str, object]) -> None:
        if self.broken:
            raise OSError("connection reset")
        if self.full is not None:
            await self.full
        body = message["body"]
        assert isinstance(body, bytes)
        self.bodies.append(body)


async def test_an_attached_watcher_writes_each_release_in_the_fan_out_pass_itself() -> None:
    """Attached to the server's send, watchers get the release written during the hub's
    fan-out (no await of theirs in between), and a heartbeat the same way."""
    configs = Configs()
    configs.release["a"] = 1
    hub = hub_over(configs)
    sockets = [Socket() for _ in range(20)]
    watchers = [Watcher("a", f"t{i}", "h", 1, "x") for i in range(20)]
    for watcher, socket in zip(watchers, sockets, strict=True):
        watcher.attach(socket.send)
        hub.subscribe(watcher)
    configs.release["a"] = 2
    hub.publish([ReleaseNotice("a", 2)])
    await settle()
    for watcher, socket in zip(watchers, sockets, strict=True):
        assert socket.bodies == [b'id: 2\nevent: config\ndata: {"R":"2"}\n\n']
        watcher.ping()
        assert socket.bodies[-1] == b": ping\n\n"


async def test_a_slow_attached_watcher_skips_to_the_newest_and_ends_after_its_send() -> None:
    """While a send waits, newer releases replace each other (never an older one after a
    newer); when the client catches up only the newest is written; the stream's end waits for
    the send under way, and a send that fails ends the stream."""
    configs = Configs()
    configs.release["a"] = 1
    hub = hub_over(configs)
    socket = Socket()
    socket.full = asyncio.get_running_loop().create_future()
    watcher = Watcher("a", "t", "h", 1, "x")
    watcher.attach(socket.send)
    hub.subscribe(watcher)
    for release in (2, 3, 4):
        configs.release["a"] = release
        hub.publish([ReleaseNotice("a", release)])
        await settle()
    watcher.offer(3, b"older")
    assert socket.bodies == []
    full, socket.full = socket.full, None
    full.set_result(None)
    await settle()
    event = b'id: %d\nevent: config\ndata: {"R":"%d"}\n\n'
    assert socket.bodies == [event % (2, 2), event % (4, 4)]  # 3 skipped, "older" ignored
    socket.full = asyncio.get_running_loop().create_future()
    watcher.offer(5, b"id: 5\n\n")
    watcher.offer(6, b"id: 6\n\n")
    ended = asyncio.ensure_future(watcher.ended())
    watcher.finish(b"last")
    await settle()
    assert not ended.done()  # the release-5 send is still under way
    full, socket.full = socket.full, None
    full.set_result(None)
    await settle()
    assert ended.done()
    assert socket.bodies[2:] == [b"id: 5\n\n"]  # 6 was dropped by finish
    assert watcher.last() == b"last"  # the handler sends it

    broken = Socket()
    broken.broken = True
    gone = Watcher("a", "t2", "h", 4, "x")
    gone.attach(broken.send)
    hub.subscribe(gone)
    gone.offer(5, b"id: 5\n\n")
    await asyncio.wait_for(gone.ended(), 5)
    assert gone.last() == b""


async def test_a_detached_watcher_abandons_its_waiting_send() -> None:
    """``detach`` (the handler leaving, e.g. cancelled at shutdown) closes a send that waits,
    and nothing is written for it later."""
    hub = hub_over(Configs())
    socket = Socket()
    socket.full = asyncio.get_running_loop().create_future()
    watcher = Watcher("a", "t", "h", 1, "x")
    watcher.attach(socket.send)
    hub.subscribe(watcher)
    watcher.offer(2, b"id: 2\n\n")
    watcher.detach()
    socket.full.set_result(None)
    await settle()
    watcher.offer(3, b"id: 3\n\n")
    await settle()
    assert socket.bodies == []
