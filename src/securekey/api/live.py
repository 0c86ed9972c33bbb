"""Live config: the in-memory read cache, stream caps, and where the store's notices go.

Notices (this process's commits and other replicas', see ``store.notices``) drop cached
configs and reach the broadcast hub (``api.broadcast``), which pushes releases to watchers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from securekey.api.broadcast import ReleaseHub
from securekey.exceptions import RateLimitedError
from securekey.services import IDENTITY_CHANGED, ReleaseNotice
from securekey.services.ports import NOTICES_LOST, TOKEN_REVOKED

__all__ = [
    "CachedConfig",
    "ConfigCache",
    "ReleaseHub",
    "ReleaseSink",
    "StreamSlots",
]


class StreamSlots:
    """Open live streams, counted per token and in all, each under its cap.

    A stream holds a socket and a coroutine for as long as the client likes: without a cap
    one token could open streams until the process runs out of file descriptors.
    """

    def __init__(self, per_token: int = 20, total: int = 10_000) -> None:
        self.per_token = per_token
        self.total = total
        self._open: dict[str, int] = {}
        self.count = 0

    def acquire(self, token_id: str) -> None:
        """Take a slot for ``token_id``, or raise ``RateLimitedError`` (429) naming the cap."""
        mine = self._open.get(token_id, 0)
        if mine >= self.per_token:
            raise RateLimitedError(
                f"This token already has {mine} open config streams, the most this server "
                "allows per token; close one (or use another token) before opening another.",
                retry_after=5,
            )
        if self.count >= self.total:
            raise RateLimitedError(
                f"This server has {self.count} open config streams, its limit; try again later.",
                retry_after=5,
            )
        self._open[token_id] = mine + 1
        self.count += 1

    def release(self, token_id: str) -> None:
        """Give back a slot taken by ``acquire``."""
        left = self._open.get(token_id, 0) - 1
        if left > 0:
            self._open[token_id] = left
        else:
            self._open.pop(token_id, None)
        self.count -= 1

    def open_for(self, token_id: str) -> int:
        """How many streams ``token_id`` holds open."""
        return self._open.get(token_id, 0)


@dataclass(frozen=True, slots=True)
class CachedConfig:
    """An app's config at one release, pre-serialised for the read path."""

    app_id: str
    app_name: str
    release: int
    body: bytes
    stored_at: float
    #: Served from memory because the database could not be asked (stale-if-error).
    stale: bool = False


class ConfigCache:
    """app id → its config at its current release; dropped by release notices.

    The cache remembers the newest release each notice announced, and refuses to store a
    snapshot older than that, so a slow reader racing a rotation cannot put stale keys back.

    Renames and destroys (notices with version ``IDENTITY_CHANGED``, from this process or, on
    PostgreSQL, any replica) drop the app by id and by name, and bump ``generation``. A fill
    takes the generation before it reads the database and ``store`` refuses it if the
    generation moved meanwhile: a read that began before a rename cannot put the old name back
    (and serve the app's keys under a name another app may take next).

    ``ttl`` bounds how long a renamed app's old name keeps answering on another replica.

    An entry past its ``ttl``, or set aside by ``clear()`` when notices may have been lost, is
    not served as fresh but is kept for ``stale()``: while the database cannot be reached, the
    last config this process saw is a better answer for a consumer than none. Entries that a
    release notice replaced are dropped for good.
    """

    def __init__(self, ttl: float = 5.0, max_entries: int = 100_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, CachedConfig] = {}
        self._names: dict[str, str] = {}
        self._announced: dict[str, int] = {}
        self._aside: dict[str, CachedConfig] = {}  # cleared, unconfirmed: for stale() only
        self._lock = threading.Lock()
        self.generation = 0
        self.hits = 0
        self.misses = 0

    def lookup(self, ref: str) -> CachedConfig | None:
        """The cached config of the app named or identified by ``ref``, if fresh."""
        app_id = self._names.get(ref, ref)
        entry = self._entries.get(app_id)
        if (
            entry is None
            or time.monotonic() - entry.stored_at > self.ttl
            or ref not in (entry.app_id, entry.app_name)
        ):
            self.misses += 1
            return None
        self.hits += 1
        return entry

    def stale(self, ref: str) -> CachedConfig | None:
        """The last config known for ``ref`` whatever its age, marked stale; None if unknown."""
        with self._lock:
            candidates = [*self._entries.values(), *self._aside.values()]
        for entry in candidates:
            if ref in (entry.app_id, entry.app_name) and entry.release >= self._announced.get(
                entry.app_id, 0
            ):
                return replace(entry, stale=True)
        return None

    def store(self, entry: CachedConfig, generation: int | None = None) -> None:
        """Keep ``entry`` unless a newer release of its app has been announced, or (given the
        ``generation`` read before the snapshot was taken) an app was renamed or destroyed."""
        with self._lock:
            if generation is not None and generation != self.generation:
                return
            if entry.release < self._announced.get(entry.app_id, 0):
                return
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
                self._names.clear()
            old = self._entries.get(entry.app_id)
            if old is not None and old.app_name != entry.app_name:
                self._names.pop(old.app_name, None)
            self._entries[entry.app_id] = entry
            self._names[entry.app_name] = entry.app_id
            self._aside.pop(entry.app_id, None)

    def invalidate(self, notices: Sequence[ReleaseNotice]) -> None:
        """Drop the apps named in ``notices`` and remember their new release numbers."""
        with self._lock:
            for notice in notices:
                if notice.version < IDENTITY_CHANGED:
                    continue  # a token revoked, or notices lost: no app to drop
                if notice.version == IDENTITY_CHANGED:
                    self._drop(notice.app_id)
                    continue
                known = self._announced.get(notice.app_id, 0)
                self._announced[notice.app_id] = max(known, notice.version)
                entry = self._entries.pop(notice.app_id, None)
                self._aside.pop(notice.app_id, None)
                if entry is not None:
                    self._names.pop(entry.app_name, None)

    def forget(self, app_id: str, *names: str) -> None:
        """Drop one app (renamed or destroyed here), by id and by each of ``names``."""
        with self._lock:
            self._drop(app_id, *names)

    def _drop(self, app_id: str, *names: str) -> None:
        self.generation += 1
        entry = self._entries.pop(app_id, None)
        aside = self._aside.pop(app_id, None)
        gone = {*names, *(e.app_name for e in (entry, aside) if e is not None)}
        for name, owner in list(self._names.items()):
            if owner == app_id or name in gone:
                del self._names[name]
                if owner != app_id:
                    self._entries.pop(owner, None)
        # Nor may a config set aside for stale reads answer under a name that changed hands.
        for owner, old in list(self._aside.items()):
            if old.app_name in gone:
                del self._aside[owner]

    def clear(self) -> None:
        """Serve nothing as fresh (e.g. after losing the notification connection).

        The entries are set aside for ``stale()`` rather than forgotten.
        """
        with self._lock:
            self.generation += 1
            if len(self._aside) + len(self._entries) > self.max_entries:
                self._aside.clear()
            self._aside.update(self._entries)
            self._entries.clear()
            self._names.clear()


class ReleaseSink:
    """Where the store's notices go: the token and read caches, then the broadcast hub."""

    def __init__(
        self,
        hub: ReleaseHub,
        cache: ConfigCache,
        forget_token: Callable[[str], None] | None = None,
    ) -> None:
        self.hub = hub
        self.cache = cache
        self.forget_token = forget_token

    def __call__(self, notices: Sequence[ReleaseNotice]) -> None:
        if self.forget_token is not None:
            # A token revoked on any replica stops working here at once, not when the cached
            # check of it expires. (A lost notice is covered by that expiry: clearing every
            # token here would also end "verified tokens keep working" during an outage.)
            for notice in notices:
                if notice.version == TOKEN_REVOKED:
                    self.forget_token(notice.app_id)
        if any(notice.version == NOTICES_LOST for notice in notices):
            self.cache.clear()  # notices may have been missed: serve nothing as fresh
        self.cache.invalidate(notices)
        self.hub.publish(notices)
