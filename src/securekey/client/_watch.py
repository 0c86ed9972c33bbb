"""Live refresh: follow an app's config-var stream and swap a key ring the moment it changes.

``ConfigWatcher`` is the asyncio core (stream, reconnect with backoff and ``Last-Event-ID``,
conditional-GET polling while the stream is down). ``AsyncWatchedKeyRing`` runs it in the
caller's event loop; ``WatchedKeyRing`` runs it in a background thread with its own loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from securekey.client._api import ConfigSnapshot, Endpoint, StreamShutdown, tls_verify
from securekey.client._ring import KeyRing
from securekey.domain.keys import KeyPair, parse_pair
from securekey.exceptions import SecureKeyError, ValidationError

__all__ = ["AsyncWatchedKeyRing", "Backoff", "ConfigWatcher", "SnapshotCallback", "WatchedKeyRing"]

log = logging.getLogger("securekey.client")
T = TypeVar("T")

#: The longest ``retry:`` hint honoured after a graceful end of stream, in seconds.
SHUTDOWN_RETRY_CAP = 30.0

#: Called with each new snapshot, in the watcher's event loop thread.
SnapshotCallback = Callable[[ConfigSnapshot], None]


class Backoff:
    """Exponential backoff with jitter: each delay is half fixed, half random ("equal jitter")."""

    def __init__(
        self,
        base: float = 0.5,
        cap: float = 30.0,
        factor: float = 2.0,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.base, self.cap, self.factor, self._rng = base, cap, factor, rng
        self.attempt = 0

    def next(self) -> float:
        """The delay before the next attempt, growing until ``cap``."""
        ceiling = min(self.cap, self.base * self.factor**self.attempt)
        self.attempt += 1
        return ceiling / 2 + ceiling / 2 * self._rng()

    def reset(self) -> None:
        """Start again from ``base`` (after a success)."""
        self.attempt = 0


class ConfigWatcher:
    """Follows one app's config vars and tells listeners about every new release, in order.

    ``fetch()`` is one conditional GET (raises on failure); ``run()`` follows the event
    stream until cancelled and never raises for server trouble: it reconnects with backoff
    and ``Last-Event-ID``, polling with conditional GETs every ``poll_interval`` meanwhile.
    ``apply_delay`` (seconds, per pushed change) simulates slow propagation in drills and
    tests; explicit ``fetch()`` calls are never delayed. An ``https`` server's certificate
    is verified against ``ca_bundle`` (a PEM file; by default ``$SECUREKEY_CA_BUNDLE``, else
    the usual public CAs).
    """

    def __init__(
        self,
        url: str,
        app: str,
        token: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        poll_interval: float = 5.0,
        read_timeout: float = 45.0,
        timeout: float = 10.0,
        backoff: Backoff | None = None,
        apply_delay: Callable[[], float] | None = None,
        ca_bundle: str | os.PathLike[str] | None = None,
    ) -> None:
        self.endpoint = Endpoint(url, app, token)
        self._client = httpx.AsyncClient(
            transport=transport, timeout=timeout, verify=tls_verify(ca_bundle)
        )
        self._poll_interval = poll_interval
        self._read_timeout = read_timeout
        self._backoff = backoff or Backoff()
        self._apply_delay = apply_delay
        self._listeners: list[SnapshotCallback] = []
        self.snapshot: ConfigSnapshot | None = None
        #: True while a stream is open; ``streams_opened`` counts successful connections.
        self.streaming = False
        self.streams_opened = 0
        #: Streams the server ended on purpose (``event: shutdown``): reconnected at once.
        self.shutdowns_seen = 0
        self._failing = False
        self._shutdown: StreamShutdown | None = None

    @property
    def release(self) -> int | None:
        """The newest release seen, or None before the first fetch."""
        return self.snapshot.release if self.snapshot else None

    def add_listener(self, callback: SnapshotCallback) -> Callable[[], None]:
        """Call ``callback(snapshot)`` on each new release; returns an unsubscribe function."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    def _apply(self, snapshot: ConfigSnapshot) -> bool:
        if self.snapshot is not None and snapshot.release <= self.snapshot.release:
            return False
        self.snapshot = snapshot
        for callback in list(self._listeners):
            try:
                callback(snapshot)
            except Exception:
                log.exception(
                    "A securekey config listener failed at release v%d.", snapshot.release
                )
        return True

    async def _deliver(self, snapshot: ConfigSnapshot) -> None:
        if self._apply_delay is not None:
            await asyncio.sleep(max(0.0, self._apply_delay()))
        self._apply(snapshot)

    async def fetch(self) -> ConfigSnapshot:
        """One conditional GET now; applies and returns the newest snapshot. Raises on failure."""
        snapshot = await self.endpoint.aget(self._client, etag=self.release)
        if snapshot is not None:
            self._apply(snapshot)
        if self.snapshot is None:  # pragma: no cover - 304 without a prior ETag cannot happen
            raise SecureKeyError("The securekey server answered 304 to an unconditional GET.")
        return self.snapshot

    async def _stream(self) -> AsyncIterator[ConfigSnapshot]:
        opened = False
        async for snapshot in self.endpoint.astream(self._client, self.release, self._read_timeout):
            if not opened:
                opened = True
                self._connected()
            if isinstance(snapshot, StreamShutdown):
                self._shutdown = snapshot
            elif snapshot is not None:
                yield snapshot

    def _connected(self) -> None:
        self.streaming = True
        self.streams_opened += 1
        self._backoff.reset()
        if self._failing:
            log.info("Following %s's config vars again.", self.endpoint.app)
        self._failing = False

    def _failed(self, why: str) -> None:
        if not self._failing:
            log.warning(
                "Lost the config-var stream of %s (%s); retrying, polling meanwhile.",
                self.endpoint.app,
                why,
            )
        self._failing = True

    async def _poll_once(self) -> None:
        try:
            snapshot = await self.endpoint.aget(self._client, etag=self.release)
        except SecureKeyError as exc:
            log.debug("Poll failed: %s", exc.message)
            return
        if snapshot is not None:
            await self._deliver(snapshot)

    async def _wait_polling(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + delay
        while True:
            await self._poll_once()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            await asyncio.sleep(min(self._poll_interval, remaining))
            if loop.time() >= deadline:
                return

    async def run(self) -> None:
        """Follow the stream until cancelled; survives any server trouble."""
        while True:
            self._shutdown = None
            try:
                async for snapshot in self._stream():
                    await self._deliver(snapshot)
                if self._shutdown is None:
                    self._failed("the server ended the stream")
            except SecureKeyError as exc:
                self._failed(exc.message)
            except (httpx.HTTPError, ValueError) as exc:
                self._failed(type(exc).__name__)
            except Exception:  # a watcher that dies silently would freeze the keys: never
                log.exception("Unexpected error following %s's config vars.", self.endpoint.app)
                self._failing = True
            finally:
                self.streaming = False
            if self._shutdown is not None:
                await self._after_shutdown(self._shutdown)
            else:
                await self._wait_polling(self._backoff.next())

    async def _after_shutdown(self, notice: StreamShutdown) -> None:
        """The server is stopping: no failure, reconnect after its ``retry`` hint (at once
        without one), resuming with Last-Event-ID, most likely on another replica."""
        self.shutdowns_seen += 1
        delay = min(max(0.0, notice.retry or 0.0), SHUTDOWN_RETRY_CAP)
        log.info(
            "The securekey server ended %s's config-var stream to shut down; "
            "reconnecting in %.1fs.",
            self.endpoint.app,
            delay,
        )
        if delay > 0:
            await asyncio.sleep(delay)

    async def aclose(self) -> None:
        """Close the HTTP client (cancel ``run`` first)."""
        await self._client.aclose()


class _LoopThread:
    """A daemon thread running an event loop that other threads hand coroutines to."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def start(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coro`` as a task on the loop; returns the task."""

        async def create() -> asyncio.Task[None]:
            return asyncio.ensure_future(coro)

        return self.submit(create()).result()

    def stop(self, timeout: float = 5.0) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self.loop.is_closed():
            return
        with contextlib.suppress(Exception):
            self.submit(cancel_all()).result(timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.loop.close()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def _stop_watching(task: asyncio.Task[None] | None, watcher: ConfigWatcher) -> None:
    """Cancel the following task, then close the connections (in that order: no alarms)."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await watcher.aclose()


class _WatcherFetcher:
    """A ring's refresh: one conditional GET on the watcher's own loop, from any thread."""

    def __init__(
        self, watcher: ConfigWatcher, loop: asyncio.AbstractEventLoop, timeout: float
    ) -> None:
        self._watcher, self._loop, self._timeout = watcher, loop, timeout

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


class _WatchedMixin(KeyRing):
    """What both watched rings share: the watcher, the var, and applying a snapshot."""

    _watcher: ConfigWatcher
    _var: str

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


class WatchedKeyRing(_WatchedMixin):
    """A key ring kept current by a background thread following the server's stream.

    Create it with ``WatchedKeyRing.connect(...)`` (it fetches once, raising if it cannot),
    use it from any thread, and ``close()`` it (or use it as a context manager).
    ``transport`` is an ``httpx.AsyncBaseTransport``: the thread runs an asyncio loop.
    """

    _thread: _LoopThread
    _task: asyncio.Task[None]

    @classmethod
    def connect(
        cls,
        url: str,
        app: str,
        token: str,
        *,
        var: str = "SECURE_KEY",
        transport: httpx.AsyncBaseTransport | None = None,
        poll_interval: float = 5.0,
        read_timeout: float = 45.0,
        timeout: float = 10.0,
        backoff: Backoff | None = None,
        apply_delay: Callable[[], float] | None = None,
        min_refresh_interval: float = 1.0,
        ca_bundle: str | os.PathLike[str] | None = None,
    ) -> Self:
        """Fetch the pair in ``var`` now, then follow the app's config vars in a thread."""
        thread = _LoopThread(f"securekey-watch-{app}")
        watcher = ConfigWatcher(
            url,
            app,
            token,
            transport=transport,
            poll_interval=poll_interval,
            read_timeout=read_timeout,
            timeout=timeout,
            backoff=backoff,
            apply_delay=apply_delay,
            ca_bundle=ca_bundle,
        )
        try:
            snapshot = thread.submit(watcher.fetch()).result(timeout + 5)
            pair = snapshot.pair(var)
        except BaseException:
            with contextlib.suppress(Exception):
                thread.submit(watcher.aclose()).result(5)
            thread.stop()
            raise
        ring = cls(
            pair,
            fetcher=_WatcherFetcher(watcher, thread.loop, timeout + 5),
            min_refresh_interval=min_refresh_interval,
        )
        ring._watcher, ring._var, ring._thread = watcher, var, thread
        thread.loop.call_soon_threadsafe(watcher.add_listener, ring._on_snapshot)
        ring._task = thread.start(watcher.run())
        return ring

    def close(self) -> None:
        """Stop following and release the thread and its connections."""
        with contextlib.suppress(Exception):
            self._thread.submit(_stop_watching(self._task, self._watcher)).result(5)
        self._thread.stop()


class AsyncWatchedKeyRing(_WatchedMixin):
    """A key ring kept current by a task in the caller's event loop.

    ``ring = await AsyncWatchedKeyRing.connect(...)`` then ``await ring.aclose()``, or
    ``async with await AsyncWatchedKeyRing.connect(...) as ring``. Other threads may still
    call ``refresh()``: it runs on this ring's loop.
    """

    _task: asyncio.Task[None]

    @classmethod
    async def connect(
        cls,
        url: str,
        app: str,
        token: str,
        *,
        var: str = "SECURE_KEY",
        transport: httpx.AsyncBaseTransport | None = None,
        poll_interval: float = 5.0,
        read_timeout: float = 45.0,
        timeout: float = 10.0,
        backoff: Backoff | None = None,
        apply_delay: Callable[[], float] | None = None,
        min_refresh_interval: float = 1.0,
        ca_bundle: str | os.PathLike[str] | None = None,
    ) -> Self:
        """Fetch the pair in ``var`` now, then follow the app's config vars in a task."""
        watcher = ConfigWatcher(
            url,
            app,
            token,
            transport=transport,
            poll_interval=poll_interval,
            read_timeout=read_timeout,
            timeout=timeout,
            backoff=backoff,
            apply_delay=apply_delay,
            ca_bundle=ca_bundle,
        )
        try:
            pair = (await watcher.fetch()).pair(var)
        except BaseException:
            await watcher.aclose()
            raise
        loop = asyncio.get_running_loop()
        ring = cls(
            pair,
            fetcher=_WatcherFetcher(watcher, loop, timeout + 5),
            min_refresh_interval=min_refresh_interval,
        )
        ring._watcher, ring._var = watcher, var
        watcher.add_listener(ring._on_snapshot)
        ring._task = asyncio.ensure_future(watcher.run())
        return ring

    async def aclose(self) -> None:
        """Stop following and close the connections."""
        await _stop_watching(self._task, self._watcher)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
