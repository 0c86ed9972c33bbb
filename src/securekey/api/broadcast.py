"""The per-process broadcast hub behind ``/apps/{app}/config-vars/stream``.

One release is loaded once and encoded once; the same bytes go to every watcher of the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from securekey.api.watcher import PING, Watcher, config_event
from securekey.exceptions import NotFoundError, UnavailableError
from securekey.services import IDENTITY_CHANGED, ReleaseNotice
from securekey.services.ports import NOTICES_LOST, TOKEN_REVOKED

if TYPE_CHECKING:  # live.py re-exports the hub, so it is imported from there at run time
    from securekey.api.live import CachedConfig

__all__ = [
    "DELETED_EVENT",
    "PING",
    "SHUTDOWN_EVENT",
    "ReleaseHub",
    "Verifier",
    "Watcher",
    "config_event",
]

#: Seconds between looks at the database for a watched app while it is unavailable.
OUTAGE_POLL = 1.0
#: The last event of a stream whose server is stopping: reconnect (to another replica) after
#: ``retry`` ms, resuming with Last-Event-ID; the event carries no id, so that stays the same.
SHUTDOWN_EVENT = (
    b'retry: 1000\nevent: shutdown\ndata: {"reason": "the server is stopping; reconnect"}\n\n'
)
DELETED_EVENT = b"event: deleted\ndata: {}\n\n"

Loader = Callable[[str], Awaitable["CachedConfig"]]
#: Whether a stream's credentials still allow it: False ends it, None means "cannot tell now".
Verifier = Callable[["Watcher"], Awaitable[bool | None]]


class ReleaseHub:
    """Per process: hears notices (any thread), loads each new release of a watched app once
    and fans the encoded event out; ends the streams of revoked tokens and of deleted apps."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._events: dict[str, asyncio.Event] = {}  # for ``wait`` (the dashboard)
        self._versions: dict[str, int] = {}
        self._apps: dict[str, set[Watcher]] = {}
        self._tokens: dict[str, set[Watcher]] = {}
        self._latest: dict[str, CachedConfig] = {}
        self._loading: dict[str, asyncio.Task[None]] = {}
        self._dirty: set[str] = set()
        self._revoked: set[str] = set()
        self._load: Loader | None = None
        self._verify: Verifier | None = None
        self._forget: Callable[[str], None] | None = None
        self._beat: asyncio.Task[None] | None = None
        self.ping_interval = 15.0
        #: Set when the server stops: streams end so their clients move to another replica.
        self.closing = False

    @property
    def watchers(self) -> int:
        """How many streams are open."""
        return sum(len(group) for group in self._apps.values())

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach to the server's event loop (at start-up; tasks of an earlier loop are gone)."""
        self._loop = loop
        self._beat = None
        self._loading.clear()
        self.closing = False

    def connect(
        self, load: Loader, verify: Verifier, forget: Callable[[str], None], ping: float
    ) -> None:
        """Where releases are read, credentials checked and revoked tokens forgotten."""
        self._load, self._verify, self._forget, self.ping_interval = load, verify, forget, ping

    # ------------------------------------------------------------- notices in

    def publish(self, notices: Sequence[ReleaseNotice]) -> None:
        """Announce notices; callable from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop is shutting down
            loop.call_soon_threadsafe(self._hear, list(notices))

    def _hear(self, notices: list[ReleaseNotice]) -> None:
        for notice in notices:
            app_id, version = notice.app_id, notice.version
            if version == TOKEN_REVOKED:
                self._revoke(app_id)
            elif version == NOTICES_LOST:
                self._resync()
            else:
                if version != IDENTITY_CHANGED:
                    self._versions[app_id] = max(self._versions.get(app_id, 0), version)
                event = self._events.pop(app_id, None)
                if event is not None:
                    event.set()
                if app_id in self._apps:
                    self._refresh(app_id)

    def _revoke(self, token_id: str) -> None:
        if len(self._revoked) >= 100_000:
            self._revoked.clear()
        self._revoked.add(token_id)
        if self._forget is not None:
            self._forget(token_id)
        for watcher in list(self._tokens.get(token_id, ())):
            watcher.finish()

    def _resync(self) -> None:
        """Notices may have been missed: every watched app and every token is looked at again."""
        self._wake_all()
        for app_id in list(self._apps):
            self._refresh(app_id)
        if self._loop is not None and self._tokens:
            self._loop.create_task(self._verify_all())

    # ---------------------------------------------------------- loading, fan-out

    def _refresh(self, app_id: str) -> None:
        """Load ``app_id``'s config once (again, if a notice came during a load) and fan it out."""
        self._dirty.add(app_id)
        if app_id not in self._loading and self._load is not None and self._loop is not None:
            self._loading[app_id] = self._loop.create_task(self._reload(app_id))

    async def _reload(self, app_id: str) -> None:
        assert self._load is not None
        try:
            while app_id in self._dirty and app_id in self._apps and not self.closing:
                self._dirty.discard(app_id)
                try:
                    snapshot: CachedConfig | None = await self._load(app_id)
                except NotFoundError:
                    self._end_app(app_id, DELETED_EVENT)
                    return
                except UnavailableError:
                    snapshot = None
                if snapshot is None or snapshot.stale:
                    # The database is down: look again shortly (no busy loop).
                    self._dirty.add(app_id)
                    await asyncio.sleep(OUTAGE_POLL)
                    continue
                self._fan_out(snapshot)
        finally:
            self._loading.pop(app_id, None)

    def _fan_out(self, snapshot: CachedConfig) -> None:
        group = self._apps.get(snapshot.app_id)
        if not group:
            return
        self._latest[snapshot.app_id] = snapshot
        event = config_event(snapshot)  # once, for every watcher
        release = snapshot.release
        # The pass allocates a message per watcher: a collection falling due in the middle
        # (a full one walks every open connection's objects) would hold back everyone after it.
        collecting = gc.isenabled()
        if collecting:
            gc.disable()
        try:
            for watcher in group:
                watcher.offer(release, event)
        finally:
            if collecting:
                gc.enable()

    def _end_app(self, app_id: str, last: bytes) -> None:
        for watcher in list(self._apps.get(app_id, ())):
            watcher.finish(last)

    # ----------------------------------------------------------- watchers

    def subscribe(self, watcher: Watcher) -> None:
        """Start handing ``watcher`` its app's releases newer than ``watcher.release``."""
        if self.closing:
            watcher.finish(SHUTDOWN_EVENT)
            return
        if watcher.token_id in self._revoked:
            watcher.finish()
            return
        self._apps.setdefault(watcher.app_id, set()).add(watcher)
        self._tokens.setdefault(watcher.token_id, set()).add(watcher)
        latest = self._latest.get(watcher.app_id)
        if latest is not None and latest.release > watcher.release:
            watcher.offer(latest.release, config_event(latest))
        elif self.known_version(watcher.app_id) > watcher.release:
            self._refresh(watcher.app_id)  # announced, but not yet loaded here
        if self._beat is None and self._loop is not None:
            self._beat = self._loop.create_task(self._heartbeat())

    def unsubscribe(self, watcher: Watcher) -> None:
        """Forget ``watcher`` (its stream ended)."""
        for index, key in ((self._apps, watcher.app_id), (self._tokens, watcher.token_id)):
            group = index.get(key)
            if group is not None:
                group.discard(watcher)
                if not group:
                    del index[key]
                    if index is self._apps:
                        self._latest.pop(key, None)

    async def _heartbeat(self) -> None:
        """Every ``ping_interval``: a ping on every stream, and each token checked once."""
        while not self.closing:
            await asyncio.sleep(self.ping_interval)
            for group in list(self._apps.values()):
                for watcher in group:
                    watcher.ping()
            await self._verify_all()

    async def _verify_all(self) -> None:
        """One credential check per token (not per stream); a refused token's streams end."""
        if self._verify is None:
            return
        checked: dict[tuple[str, str | None], bool | None] = {}
        for group in list(self._tokens.values()):
            for watcher in list(group):
                key = (watcher.token_id, watcher.header)
                if key not in checked:
                    checked[key] = await self._verify(watcher)
                if checked[key] is False:
                    watcher.finish()

    # ------------------------------------------------------------ the dashboard

    def known_version(self, app_id: str) -> int:
        """The newest release this hub has heard of for ``app_id`` (0 if none)."""
        return self._versions.get(app_id, 0)

    async def wait(self, app_id: str, timeout: float) -> bool:
        """Wait until ``app_id`` gets a release or ``timeout`` passes; True if woken."""
        if self.closing:
            return True
        event = self._events.get(app_id)
        if event is None:
            event = self._events[app_id] = asyncio.Event()
        try:
            await asyncio.wait_for(event.wait(), timeout)
            return True
        except TimeoutError:
            return False

    def _wake_all(self) -> None:
        events, self._events = self._events, {}
        for event in events.values():
            event.set()

    def close(self) -> None:
        """End every stream with a retry hint (call in the server's loop, as it shuts down)."""
        self.closing = True
        self._wake_all()
        for group in list(self._apps.values()):
            for watcher in list(group):
                watcher.finish(SHUTDOWN_EVENT)
        if self._beat is not None:
            self._beat.cancel()
