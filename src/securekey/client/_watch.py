"""Live refresh's core: ``ConfigWatcher`` follows an app's config-var stream, in asyncio.

It reconnects with backoff and ``Last-Event-ID``, and polls with conditional GETs while the
stream is down. The watched key rings (``_watched``) and ``securekey run`` build on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import httpx

from securekey.client._api import ConfigSnapshot, Endpoint, StreamShutdown
from securekey.client._tls import tls_verify
from securekey.exceptions import SecureKeyError

__all__ = ["SHUTDOWN_RETRY_CAP", "Backoff", "ConfigWatcher", "SnapshotCallback"]

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
        #: Seconds a request to the server may take (connect, write, pool; reads on a stream
        #: are bounded by ``read_timeout`` instead).
        self.timeout = timeout
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

    async def stop(self, task: asyncio.Task[None] | None) -> None:
        """Cancel ``task`` (the one running ``run``), then close the connections.

        In that order, so the stream does not end as a failure worth a warning.
        """
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.aclose()
