"""Watched key rings: a ``KeyRing`` that a ``ConfigWatcher`` keeps current, swapped live.

``AsyncWatchedKeyRing`` runs the watcher in the caller's event loop; ``WatchedKeyRing`` runs it
in a background thread with its own loop. Both take the same ``WatchOptions``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from types import TracebackType
from typing import Self, TypedDict, Unpack, cast

import httpx

from securekey.client._api import ConfigSnapshot
from securekey.client._loop import LoopThread
from securekey.client._ring import KeyRing
from securekey.client._watch import Backoff, ConfigWatcher
from securekey.domain.keys import KeyPair, parse_pair
from securekey.exceptions import ValidationError

__all__ = ["AsyncWatchedKeyRing", "WatchOptions", "WatchedKeyRing", "WatcherOptions"]

log = logging.getLogger("securekey.client")

#: The config var a ring reads unless told otherwise (as an add-on attached as ``SECURE``).
DEFAULT_VAR = "SECURE_KEY"


class WatcherOptions(TypedDict, total=False):
    """``ConfigWatcher``'s keyword options; see its docstring for what each one means."""

    transport: httpx.AsyncBaseTransport | None
    poll_interval: float
    read_timeout: float
    timeout: float
    backoff: Backoff | None
    apply_delay: Callable[[], float] | None
    ca_bundle: str | os.PathLike[str] | None


class WatchOptions(WatcherOptions, total=False):
    """``connect()``'s keyword options: the watcher's, plus the ring's own two.

    ``var``: the config var holding the pair (default ``SECURE_KEY``).
    ``min_refresh_interval``: seconds between two refreshes the ring starts (default 1).
    """

    var: str
    min_refresh_interval: float


def _configure(
    url: str, app: str, token: str, options: WatchOptions
) -> tuple[ConfigWatcher, str, float]:
    """(the watcher, the var, the refresh interval) that ``connect`` options ask for."""
    ring_only = ("var", "min_refresh_interval")
    watcher = cast(WatcherOptions, {k: v for k, v in options.items() if k not in ring_only})
    return (
        ConfigWatcher(url, app, token, **watcher),
        options.get("var", DEFAULT_VAR),
        options.get("min_refresh_interval", 1.0),
    )


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class _WatcherFetcher:
    """A ring's refresh: one conditional GET on the watcher's own loop, from any thread."""

    def __init__(self, watcher: ConfigWatcher, loop: asyncio.AbstractEventLoop) -> None:
        self._watcher, self._loop = watcher, loop
        self._timeout = watcher.timeout + 5

    def fetch(self) -> KeyPair | None:
        if _running_loop() is self._loop:
            raise RuntimeError(
                "refresh() inside the watcher's event loop would deadlock; use arefresh()."
            )
        asyncio.run_coroutine_threadsafe(self._watcher.fetch(), self._loop).result(self._timeout)
        return None  # the watcher's listener has swapped the ring already

    async def afetch(self) -> KeyPair | None:
        if _running_loop() is self._loop:
            await self._watcher.fetch()
        else:
            future = asyncio.run_coroutine_threadsafe(self._watcher.fetch(), self._loop)
            await asyncio.wrap_future(future)
        return None


class _WatchedRing(KeyRing):
    """The base of both watched rings: a key ring that a watcher on ``loop`` keeps current.

    It swaps in the pair of each new snapshot's ``var``, and refreshes through the watcher.
    """

    def __init__(
        self,
        pair: KeyPair,
        *,
        watcher: ConfigWatcher,
        var: str,
        loop: asyncio.AbstractEventLoop,
        min_refresh_interval: float,
    ) -> None:
        fetcher = _WatcherFetcher(watcher, loop)
        super().__init__(pair, fetcher=fetcher, min_refresh_interval=min_refresh_interval)
        self._watcher, self._var = watcher, var
        # Safe from any thread: the watcher does nothing until its ``run`` starts.
        watcher.add_listener(self._on_snapshot)

    @property
    def watcher(self) -> ConfigWatcher:
        """The watcher feeding this ring."""
        return self._watcher

    @property
    def var(self) -> str:
        """The config var holding the pair, e.g. ``SERVICE_ONE_SECURE_KEY``."""
        return self._var

    @property
    def release(self) -> int | None:
        """The newest release of the app this ring has seen."""
        return self._watcher.release

    def _on_snapshot(self, snapshot: ConfigSnapshot) -> None:
        value = snapshot.vars.get(self._var)
        if value is None:
            log.warning(
                "Config var %s is not set at release v%d; keeping the keys in force.",
                self._var,
                snapshot.release,
            )
            return
        try:
            pair = parse_pair(value)
        except ValidationError as exc:
            log.warning(
                "Config var %s at release v%d is no key pair (%s); keeping the keys.",
                self._var,
                snapshot.release,
                exc.message,
            )
            return
        self.swap(pair)


class WatchedKeyRing(_WatchedRing):
    """A key ring kept current by a background thread following the server's stream.

    Create it with ``WatchedKeyRing.connect(...)`` (it fetches once, raising if it cannot),
    use it from any thread, and ``close()`` it (or use it as a context manager).
    ``transport`` is an ``httpx.AsyncBaseTransport``: the thread runs an asyncio loop.
    """

    def __init__(
        self,
        pair: KeyPair,
        *,
        watcher: ConfigWatcher,
        var: str,
        thread: LoopThread,
        min_refresh_interval: float = 1.0,
    ) -> None:
        super().__init__(
            pair,
            watcher=watcher,
            var=var,
            loop=thread.loop,
            min_refresh_interval=min_refresh_interval,
        )
        self._thread = thread
        self._task = thread.start(watcher.run())

    @classmethod
    def connect(cls, url: str, app: str, token: str, **options: Unpack[WatchOptions]) -> Self:
        """Fetch the pair in ``var`` now, then follow the app's config vars in a thread."""
        watcher, var, interval = _configure(url, app, token, options)
        thread = LoopThread(f"securekey-watch-{app}")
        try:
            snapshot = thread.submit(watcher.fetch()).result(watcher.timeout + 5)
            pair = snapshot.pair(var)
        except BaseException:
            thread.close(watcher.aclose())
            raise
        return cls(pair, watcher=watcher, var=var, thread=thread, min_refresh_interval=interval)

    def close(self) -> None:
        """Stop following and release the thread and its connections."""
        self._thread.close(self._watcher.stop(self._task))


class AsyncWatchedKeyRing(_WatchedRing):
    """A key ring kept current by a task in the caller's event loop.

    ``ring = await AsyncWatchedKeyRing.connect(...)`` then ``await ring.aclose()``, or
    ``async with await AsyncWatchedKeyRing.connect(...) as ring``. Other threads may still
    call ``refresh()``: it runs on this ring's loop.
    """

    def __init__(
        self,
        pair: KeyPair,
        *,
        watcher: ConfigWatcher,
        var: str,
        min_refresh_interval: float = 1.0,
    ) -> None:
        loop = asyncio.get_running_loop()
        super().__init__(
            pair, watcher=watcher, var=var, loop=loop, min_refresh_interval=min_refresh_interval
        )
        self._task = loop.create_task(watcher.run())

    @classmethod
    async def connect(cls, url: str, app: str, token: str, **options: Unpack[WatchOptions]) -> Self:
        """Fetch the pair in ``var`` now, then follow the app's config vars in a task."""
        watcher, var, interval = _configure(url, app, token, options)
        try:
            pair = (await watcher.fetch()).pair(var)
        except BaseException:
            await watcher.aclose()
            raise
        return cls(pair, watcher=watcher, var=var, min_refresh_interval=interval)

    async def aclose(self) -> None:
        """Stop following and close the connections."""
        await self._watcher.stop(self._task)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
